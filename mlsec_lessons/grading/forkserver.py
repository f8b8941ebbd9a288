"""The fork server: workers forked from a process that has imported the exercise's libraries once.

Most of a worker's start is importing TensorFlow and Keras (about 3 s of CPU each time), and a
judge that grades twenty files, or a test of twenty wrong variants, would pay it twenty times.
The judge needs the same libraries itself, so it imports the exercise's ``PRELOAD`` (third-party
libraries only; none of the course's) first thing, and forks the server from itself then: before
it reads the key, the reference's path or the grader's environment, and before it imports the
checks (the grader starts the judge with a scrubbed environment, and hands it its own on the key's
pipe). So the libraries are imported once per judge, and the server holds nothing of the grader's.
For each worker the server forks:

* a keeper (:mod:`.keeper`), re-parented to the judge, which must be a child subreaper, so that
  the judge waits for it and signals it exactly as it would a keeper it started itself;
* which forks the worker (:mod:`.worker`), with the worker's own environment, folder, channel
  and limits, as in a fresh process.

A forked worker is the same worker: the student's file is imported after the off-limits finder
and the limits are in place, and numpy's global random state is seeded afresh. The server runs
no student code and forks only between requests, when it runs nothing else. Only the default
mode uses it: in the sandbox each worker starts as a new process in its own container.

The protocol, on a Unix ``SOCK_SEQPACKET`` pair, one message each way per worker: the judge
sends ``{"worker": [...], "env": {...}, "cwd": ..., "max_processes": n}`` (JSON) with three file
descriptors attached (the worker's channel in and out, and its log); the server answers with
the keeper's pid, as text ("0" when it could not fork).
"""
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback

from . import keeper

MAX_MESSAGE = 1 << 20  # bytes of one request: the worker's configuration
PR_SET_PDEATHSIG = 1


class ForkServerGone(RuntimeError):
    """The fork server ended; the judge starts its workers as new processes instead."""


class Forked:
    """A keeper the fork server made, seen by the judge as a ``subprocess.Popen`` (``pid``,
    ``poll``, ``wait``, ``send_signal``, ``returncode``). It is the judge's child (re-parented), so
    the judge reaps it; its pid is read from the server on first use, so a judge that asks for a
    worker does not wait for the server to finish importing."""

    def __init__(self, server):
        self.server, self._pid, self.returncode = server, None, None
        self.failed = False  # the server ended before it could fork this one: there is no process

    @classmethod
    def of(cls, pid):
        """A child of this process whose pid is known already (the server itself)."""
        forked = cls(None)
        forked._pid = pid
        return forked

    @property
    def pid(self):
        if self._pid is None and not self.failed:
            self.server.answer(self)
        return self._pid

    def poll(self):
        if self.returncode is None and self.pid is not None:
            self._reap(os.WNOHANG)
        return self.returncode

    def wait(self, timeout=None):
        if timeout is None:
            while self.returncode is None:
                self._reap(0)
            return self.returncode
        end = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= end:
                raise subprocess.TimeoutExpired(f"keeper {self.pid}", timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None and self.pid is not None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def _reap(self, flags):
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # not (or no longer) the judge's child: it is gone
            self.returncode = -signal.SIGKILL
            return
        except InterruptedError:
            return
        if pid:
            self.returncode = os.waitstatus_to_exitcode(status)


class ForkServer:
    """The judge's side: start the server (:meth:`start`), ask it for workers (:meth:`spawn`)."""

    def __init__(self, preload, env, cwd):
        self.preload, self.env, self.cwd = list(preload), dict(env), cwd
        self.process, self.socket, self.waiting = None, None, []

    @staticmethod
    def possible():
        """Make this process a child subreaper, which the server needs (Linux); False where it cannot."""
        return sys.platform.startswith("linux") and keeper.become_subreaper()

    def start(self):
        """Import ``preload`` here, then fork the server from this process, which must hold nothing
        of the grader's yet: the server is a copy of it, with the libraries already imported."""
        for name in self.preload:
            importlib.import_module(name)
        for stream in (sys.stdout, sys.stderr):  # what is buffered is written once, by this process
            stream.flush()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        judge = os.getpid()
        pid = os.fork()
        if pid == 0:
            ours.close()
            become_server(theirs, self.env, self.cwd, judge)  # never returns
        theirs.close()
        self.process, self.socket = Forked.of(pid), ours
        return self

    def spawn(self, worker_args, env, cwd, fds, max_processes=0):
        """Ask for a keeper and its worker; returns a :class:`Forked` at once. ``fds``: the worker's
        channel in and out and its log, as the judge holds them (the server gets its own copies)."""
        if self.socket is None or self.process.poll() is not None:
            raise ForkServerGone("the fork server is not running")
        message = json.dumps({"worker": [str(a) for a in worker_args], "env": env, "cwd": str(cwd),
                              "max_processes": int(max_processes or 0)}).encode()
        try:
            socket.send_fds(self.socket, [message], list(fds))
        except OSError as e:
            raise ForkServerGone(f"the fork server is not running: {e}") from None
        forked = Forked(self)
        self.waiting.append(forked)
        return forked

    def answer(self, forked):
        """Read the server's answers, in order, until ``forked`` has its pid; when the server is
        gone, every worker still waiting for one is marked ``failed`` (its pid stays None)."""
        while forked._pid is None and not forked.failed:
            try:
                reply = self.socket.recv(64) if self.waiting else b""
            except OSError:
                reply = b""
            if not reply.strip().isdigit() or int(reply) <= 0:
                for late in [forked, *self.waiting]:
                    late.failed, late.returncode = True, -signal.SIGKILL
                self.waiting.clear()
                return
            self.waiting.pop(0)._pid = int(reply)

    def stop(self):
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        if self.process is not None:
            self.process.kill()
            self.process.wait()


# ---------------------------------------------------------------------- the server's process
def become_server(sock, env, cwd, judge):
    """In the fork: drop everything of the judge's but the socket (its record's and its key's pipes
    among them), take the server's own folder and scrubbed environment, and serve."""
    try:
        keeper.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the judge gone: so is the server
        if os.getppid() != judge:  # it was gone before that
            os._exit(0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd in _open_fds():
            if fd > 2 and fd != sock.fileno():
                _close(fd)
        os.setsid()
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        serve(sock, judge)
    except BaseException:  # noqa: B036 - nothing may return into the judge's code
        traceback.print_exc()
    os._exit(0)


def serve(sock, judge):
    """Fork a keeper for each request until the judge closes the socket."""
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 3)
        except OSError:
            return
        if not message:
            return
        sock.sendall(str(fork_keeper(json.loads(message), fds, sock, judge)).encode())


def fork_keeper(request, fds, sock, judge):
    """Fork a keeper that the judge adopts (a fork that exits at once in between); its pid, or 0."""
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        return 0
    read, write = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            os.close(read)
            pid = os.fork()
            if pid == 0:
                os.close(write)
                sock.close()
                become_keeper(request, fds, judge)  # never returns
            os.write(write, str(pid).encode())
        finally:
            os._exit(0)  # the keeper, orphaned, goes to the nearest subreaper: the judge
    os.close(write)
    for fd in fds:
        os.close(fd)
    answer = os.read(read, 64)
    os.close(read)
    os.waitpid(middle, 0)
    return int(answer or 0)


def become_keeper(request, fds, judge):
    try:
        channel_in, channel_out, log = fds
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        for fd in _open_fds():  # as Popen's pass_fds: nothing else of the server's is inherited
            if fd > 2 and fd not in (channel_in, channel_out):
                _close(fd)
        os.setsid()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        deadline = time.monotonic() + 10
        while os.getppid() != judge and time.monotonic() < deadline:  # the fork in between exits
            time.sleep(0.0005)
        args = [str(channel_in), str(channel_out), *request["worker"]]
        keeper.keep(lambda: fork_worker(args), (channel_in, channel_out), request["max_processes"], parent=judge)
    except BaseException:  # noqa: B036 - nothing may return into the server's loop
        traceback.print_exc()
    os._exit(1)


def fork_worker(args):
    """Fork the worker; the keeper gets its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the keeper's handler is not the worker's
        if "numpy" in sys.modules:  # a fresh process would have fresh global random state
            sys.modules["numpy"].random.seed()
        from . import worker

        worker.main(args)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except BaseException:  # noqa: B036 - as an interpreter would: the traceback, and exit code 1
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: B036
                pass
        os._exit(code)


def _open_fds():
    try:
        return [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 1024))


def _close(fd):
    try:
        os.close(fd)
    except OSError:
        pass
