"""Notebook kernels forked from a process that has imported the course's libraries once (nbval only).

Each notebook under nbval runs in a new kernel, and every lesson's first cell imports TensorFlow, Keras,
pandas, scikit-learn and the course: about 5 s of CPU, paid once per notebook (twenty times a run), on a
machine whose two cores the other tests are using too. Under ``make test`` the repository's
``conftest.py`` points nbval's kernel at this file instead of ``ipykernel_launcher``:

* ``serve SOCKET``: the zygote, started once per pytest worker. It imports the libraries (never the
  course's own modules, which read their settings when a cell calls them, and never ``matplotlib.pyplot``,
  whose backend the kernel chooses) and forks a kernel for each request. The kernel is what
  ``ipykernel_launcher`` would have started: it takes the requesting process's command line, working
  folder, environment and standard streams, and runs in a session of its own.
* ``client -f CONNECTION_FILE``: what the kernel manager starts, in place of the kernel. It hands its
  arguments and streams to the zygote, passes on the signals it gets (interrupt, terminate), and exits
  with the kernel's status. If it is killed, the zygote kills the kernel and whatever it started. If no
  zygote answers, it becomes an ordinary kernel itself.

Only the test harness uses it: students' kernels (``make lab``) and ``make course`` start fresh, and so do
the notebooks that ``tests/test_browser.py`` runs in JupyterLab. ``MLSEC_FRESH_KERNELS=1`` turns it off, and a
run of one notebook does without it: the zygote imports more than one lesson needs, so it pays for itself from
the second notebook on (``benchmarks/bench_kernels.py``).
"""
import array
import contextlib
import json
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path

# What the lessons import, heaviest first (seconds of CPU after TensorFlow: skops 3.1, fastapi 0.6, ART 0.4).
# Not Ray, Flower or anything else that loads gRPC, whose core is not safe to fork.
PRELOAD = ("tensorflow", "keras", "numpy", "pandas", "scipy.stats", "sklearn.linear_model", "sklearn.ensemble",
           "sklearn.model_selection", "sklearn.metrics", "skops.io", "fastapi", "httpx", "art", "dp_accounting",
           "diffprivlib", "jwt", "cryptography", "ipykernel.kernelapp")
MAX_MESSAGE = 1 << 20  # bytes: the kernel's command line and environment
MAX_SOCKET_PATH = 108  # bytes of a Unix socket's path on Linux (sun_path), its final NUL included
CONNECT_SECONDS = 120  # how long a kernel waits for a zygote still importing before it starts as usual


def kernel_argv(path=__file__):
    """The kernel command that replaces ``python -m ipykernel_launcher -f {connection_file}``."""
    return [sys.executable, os.path.abspath(path), "client", "-f", "{connection_file}"]


# ---- the zygote --------------------------------------------------------------------------------------

def serve(path):
    import mlsec_lessons

    mlsec_lessons.quiet()  # the environment the lessons' first line sets, before TensorFlow is imported
    for name in PRELOAD:
        __import__(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    os.rename(path + ".tmp", path)  # clients connect only once the imports are done
    listener.listen(16)
    kernels = {}  # client connection -> the kernel's pid
    parent = os.getppid()
    while os.getppid() == parent:  # the pytest worker that started us is gone: stop
        ready, _, _ = select.select([listener, *kernels], [], [], 0.1)
        for conn in ready:
            if conn is listener:
                client, _ = listener.accept()
                pid = _fork_kernel(client, listener, kernels)
                if pid:
                    kernels[client] = pid
                else:
                    client.close()
            elif not conn.recv(64):  # the client ended or was killed: so does its kernel
                _kill(kernels.pop(conn))
                conn.close()
        for conn, pid in list(kernels.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                _send(conn, str(os.waitstatus_to_exitcode(status)).encode())
                kernels.pop(conn)
                conn.close()
    for pid in kernels.values():
        _kill(pid)
    for name in (path, path + ".pid"):  # the folder is the zygote's own (start_zygote): leave nothing behind
        with contextlib.suppress(OSError):
            os.unlink(name)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(path))


def _fork_kernel(client, listener, kernels):
    fds = array.array("i")
    message, ancillary, _, _ = client.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    try:
        request = json.loads(message)
        if len(fds) != 3:
            raise ValueError(f"expected 3 streams, got {len(fds)}")
    except ValueError:
        for fd in fds:
            os.close(fd)
        return 0
    pid = os.fork()
    if pid == 0:
        _become_kernel(request, fds, [listener, client, *kernels])
    for fd in fds:
        os.close(fd)
    _send(client, str(pid).encode())
    return pid


def _become_kernel(request, fds, sockets):
    try:
        for s in sockets:
            s.close()
        os.setsid()  # a process group of its own, so the zygote can stop the kernel and all it started
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [sys.executable, *request["argv"]]
        # TensorFlow imported matplotlib in the zygote, which read the backend from the zygote's environment:
        # read it again from the kernel's, as a kernel that imports matplotlib itself would (ipykernel's
        # default when none is set)
        import matplotlib

        os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        matplotlib.rcParams["backend"] = os.environ["MPLBACKEND"]
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from ipykernel import kernelapp

        kernelapp.launch_new_instance()
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    os._exit(code)


def _kill(pid):
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _send(conn, data):
    try:
        conn.sendall(data)
    except OSError:
        pass


# ---- the client --------------------------------------------------------------------------------------

def client(argv):
    path = os.environ.get("MLSEC_KERNEL_ZYGOTE")
    conn = _connect(path) if path else None
    if conn is None:  # no zygote: be the kernel that ipykernel_launcher would have started
        os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *argv])
    request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}
    conn.sendmsg([json.dumps(request).encode()],
                 [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
    pid = int(conn.recv(64) or 0)
    if not pid:
        sys.exit("the kernel zygote could not start a kernel")

    def relay(signum, frame):
        try:
            os.killpg(pid, signum)
        except OSError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, relay)
    status = conn.recv(64)  # a signal relayed meanwhile does not interrupt it (PEP 475)
    sys.exit(int(status) if status else 1)


def _connect(path):
    end = time.monotonic() + CONNECT_SECONDS
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
            return conn
        except OSError:
            conn.close()
            if time.monotonic() > end or not _zygote_may_come(path):
                return None
            time.sleep(0.1)


def process_state(pid):
    """The state letter of process ``pid`` in ``/proc`` ("R", "S", "Z" for a zombie, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _zygote_may_come(path):
    """The zygote's pid is beside the socket; a kernel waits only for a zygote that is still running (one that
    ended stays a zombie until the pytest worker ends, so a signal 0 would still reach it)."""
    try:
        return process_state(int(Path(path + ".pid").read_text())) not in ("Z", "X")
    except (OSError, ValueError, IndexError):
        return False


def start_zygote(folder=None):
    """Start a zygote serving at ``folder/kernels.sock``; return the socket's path (the kernels' variable
    ``MLSEC_KERNEL_ZYGOTE``), or None where that path is too long for a Unix socket. It ends by itself when
    the calling process does, and removes the socket. ``folder`` defaults to a new private folder under
    ``/tmp``: a Unix socket's path has at most 107 bytes, and a pytest worker's TMPDIR can be deeper."""
    import subprocess
    import tempfile

    if folder is None:
        folder = tempfile.mkdtemp(prefix="mlsec-kernels-", dir="/tmp" if os.path.isdir("/tmp") else None)
    path = os.path.join(folder, "kernels.sock")
    if len(os.fsencode(path)) + len(".tmp") >= MAX_SOCKET_PATH:
        return None
    process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve", path],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    with open(path + ".pid", "w") as f:
        f.write(str(process.pid))
    return path


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2])
    elif sys.argv[1:2] == ["client"]:
        client(sys.argv[2:])
    else:
        sys.exit(__doc__)
