"""The test harness's forked notebook kernels (tests/forked_kernels.py): a kernel forked from the zygote runs
code, in the requesting process's folder and environment, is interrupted and shut down as a kernel that
ipykernel_launcher started would be, and dies with its client; with no zygote, the client is a plain kernel."""
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import KernelManager

SCRIPT = Path(__file__).with_name("forked_kernels.py")
spec = importlib.util.spec_from_file_location("forked_kernels", SCRIPT)
forked_kernels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(forked_kernels)

pytestmark = pytest.mark.slow  # the zygote imports TensorFlow: make test runs these, make test-fast does not


class ForkedKernelManager(KernelManager):
    def __init__(self, socket_path, **kwargs):
        super().__init__(**kwargs)
        self._forked_spec = KernelSpec(argv=forked_kernels.kernel_argv(), display_name="forked", language="python",
                                       env={"MLSEC_KERNEL_ZYGOTE": socket_path} if socket_path else {})

    @property
    def kernel_spec(self):
        return self._forked_spec


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    path = forked_kernels.start_zygote(str(tmp_path_factory.mktemp("zygote")))
    yield path
    os.kill(int(Path(path + ".pid").read_text()), signal.SIGKILL)


def run(kc, code, timeout=60):
    """Execute ``code``; return (the reply's status, the text it printed, the error's name)."""
    msg_id = kc.execute(code)
    printed, error = [], None
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            error = msg["content"]["ename"]
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:  # a late reply to wait_for_ready's kernel_info
        reply = kc.get_shell_msg(timeout=timeout)
    return reply["content"]["status"], "".join(printed), error


def start_kernel(path, tmp_path, **env):
    km = ForkedKernelManager(path)
    km.start_kernel(cwd=str(tmp_path), env={**os.environ, **env})
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    return km, kc


def test_a_forked_kernel_runs_in_the_callers_folder_and_environment_and_shuts_down(zygote, tmp_path):
    km, kc = start_kernel(zygote, tmp_path, LESSON_MARK="42")
    try:
        status, printed, _ = run(kc, "import os, sys; print(os.getcwd(), os.environ['LESSON_MARK'], "
                                     "os.getppid(), 'tensorflow' in sys.modules)")
        cwd, mark, ppid, preloaded = printed.split()
        assert status == "ok" and cwd == str(tmp_path) and mark == "42" and preloaded == "True"
        assert int(ppid) == int(Path(zygote + ".pid").read_text())  # forked, not started by the kernel manager
        assert run(kc, "x = 6 * 7; print(x)")[1] == "42\n"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    assert not km.is_alive()


def test_an_interrupt_reaches_the_forked_kernel(zygote, tmp_path):
    km, kc = start_kernel(zygote, tmp_path)
    try:
        km.interrupt_kernel()  # idle: nothing to interrupt, and the kernel goes on
        # stop_on_error=False: after an error ipykernel aborts the requests that reach it before its event loop
        # turns over, and under load that can be the next one below ('aborted'); the interrupt is what is tested
        msg_id = kc.execute("import time; time.sleep(60)", stop_on_error=False)
        while kc.get_iopub_msg(timeout=30)["msg_type"] != "execute_input":
            pass
        time.sleep(0.5)
        km.interrupt_kernel()  # SIGINT to the client's process group; the client passes it on
        reply = kc.get_shell_msg(timeout=30)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=30)
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        assert run(kc, "print('still here')")[:2] == ("ok", "still here\n")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_killing_the_client_kills_the_kernel(zygote, tmp_path):
    km, kc = start_kernel(zygote, tmp_path)
    try:
        kernel_pid = int(run(kc, "import os; print(os.getpid())")[1])
        km.shutdown_kernel(now=True)  # SIGKILL to the client: the kernel is the zygote's child, not its
        end = time.monotonic() + 10
        while time.monotonic() < end and Path(f"/proc/{kernel_pid}").exists():
            time.sleep(0.1)
        assert not Path(f"/proc/{kernel_pid}").exists()
    finally:
        kc.stop_channels()


def test_without_a_zygote_the_client_is_a_plain_kernel(tmp_path):
    km, kc = start_kernel(str(tmp_path / "no-such.sock"), tmp_path)
    try:
        status, printed, _ = run(kc, "import os; print(os.getppid())")
        assert status == "ok" and int(printed) == os.getpid()  # the kernel manager's own child
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def test_a_zygote_that_ended_is_not_waited_for(tmp_path):
    # a zygote that could not start (its socket's folder gone, an import failing) stays a zombie until the
    # pytest worker ends: the kernel must see that it ended, not wait out CONNECT_SECONDS for it
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    while forked_kernels.process_state(ended.pid) != "Z":
        time.sleep(0.05)
    path = str(tmp_path / "kernels.sock")
    Path(path + ".pid").write_text(str(ended.pid))
    start = time.monotonic()
    km, kc = start_kernel(path, tmp_path)
    try:
        assert time.monotonic() - start < forked_kernels.CONNECT_SECONDS / 4
        assert int(run(kc, "import os; print(os.getppid())")[1]) == os.getpid()  # a plain kernel
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
        ended.wait()


def test_a_socket_path_too_long_starts_no_zygote(tmp_path):
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    assert forked_kernels.start_zygote(str(deep)) is None
    assert not list(deep.iterdir())
