"""The keeper: the parent of the worker, which kills every process the student's code started.

The keeper is a *child subreaper* (Linux ``PR_SET_CHILD_SUBREAPER``): a process the worker
double-forks, or starts in a new session with ``setsid``, is re-parented to the keeper instead
of to ``init`` when its parent ends, so the keeper still sees it. When the worker ends, or the
judge sends SIGTERM, the keeper kills its whole tree, round after round until it is empty.
Nothing of the student's code runs here.

Run as ``python -m mlsec_lessons.grading.keeper -- python -m mlsec_lessons.grading.worker ...``.
"""
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

from mlsec_lessons.grading import processes

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
TOO_MANY_PROCESSES = 125  # the exit code that says the watchdog ended the tree
OVER_LIMIT = threading.Event()


def prctl(option, value):
    """Linux's prctl(2); False where it is not available."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper():
    """True when orphaned descendants will now be re-parented to this process (Linux only)."""
    return prctl(PR_SET_CHILD_SUBREAPER, 1)


def kill_tree(rounds=200):
    """Kill every descendant of this process (frozen first, :func:`processes.kill_tree`) and reap
    them, until none is left: one that forked meanwhile leaves an orphan, re-parented here."""
    for _ in range(rounds):
        if not processes.kill_tree(os.getpid(), include_root=False):
            return True
        _reap()
    return not processes.descendants(os.getpid())


def _reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def watch(limit, interval=0.02):
    """Kill the tree when it holds more than ``limit`` processes. RLIMIT_NPROC cannot do this for
    every user (the kernel exempts root's processes, also when a sandbox maps them to nobody)."""
    def run():
        while True:
            if len(processes.descendants(os.getpid())) > limit:
                OVER_LIMIT.set()  # before the kill: the main thread, seeing the worker die, reports this
                kill_tree()
                os._exit(TOO_MANY_PROCESSES)
            time.sleep(interval)

    threading.Thread(target=run, daemon=True).start()


def keep(start, fds=(), limit=0, parent=None):
    """Be the keeper of the worker ``start()`` starts (it returns the worker's pid) until it ends;
    never returns. ``fds`` are the worker's channel, which the keeper closes once the worker holds
    them; ``limit`` is the most processes the tree may hold (0: no watchdog); ``parent`` is the
    judge, whose death ends the tree."""
    parent = os.getppid() if parent is None else parent
    become_subreaper()
    signal.signal(signal.SIGTERM, lambda *_: (kill_tree(), os._exit(143)))
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # the judge gone (killed at its time limit): end the tree
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
    worker = start()
    for fd in fds:
        os.close(fd)  # the worker holds the channel now; the keeper must not keep it open
    if limit:
        watch(limit)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:  # the watchdog's kill_tree reaped the worker first
            break
        except InterruptedError:
            continue
        if pid == worker:
            code = os.waitstatus_to_exitcode(status)
            kill_tree()
            os._exit(TOO_MANY_PROCESSES if OVER_LIMIT.is_set() else code if code >= 0 else 128 - code)
    time.sleep(1)  # the watchdog, if it is ending the tree, exits first with its own code
    os._exit(TOO_MANY_PROCESSES if OVER_LIMIT.is_set() else 0)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    fds = [int(fd) for fd in os.environ.pop("MLSEC_PASS_FDS", "").split(",") if fd]
    limit = int(os.environ.pop("MLSEC_MAX_PROCESSES", "0") or 0)
    keep(lambda: subprocess.Popen(argv, pass_fds=fds, stdin=subprocess.DEVNULL).pid, fds, limit)


if __name__ == "__main__":
    main()
