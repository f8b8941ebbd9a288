"""Lesson 06's FedAvg as a real deployment: a Flower SuperLink and SuperNodes as processes.

The simulation runs every client in Ray workers of one process tree. Here each SuperNode is its
own process that connects to the SuperLink over gRPC on 127.0.0.1, the way clients on other
machines would; ``flwr run`` submits the Flower App (``flower_app/pyproject.toml``, whose
components are :mod:`.apps`' ``server_app`` and ``client_app``) to the SuperLink's Control API.

Students who outgrow one machine start the same three commands on several (with TLS instead of
``--insecure``): see ``mlsec federated --help`` and the commands this module prints.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import RunError
from ..validation import check_choice, check_int

APP_DIR = Path(__file__).with_name("flower_app")
CONNECTION = "course-deployment"
# the SuperLink serves SuperNodes (Fleet API) and `flwr` (Control API) over HTTP on one port;
# each SuperNode serves its own ClientApp process on a port of its own
SUPERLINK = 9092
FIRST_SUPERNODE = 9094


def _executable(name):
    found = Path(sys.executable).with_name(name)
    return str(found) if found.exists() else (shutil.which(name) or name)


def _port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _wait_for_port(port, process, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RunError(f"{process.args[0]} exited with status {process.returncode} before listening "
                           f"on port {port}")
        if not _port_free(port):
            return
        time.sleep(0.2)
    raise RunError(f"nothing listened on 127.0.0.1:{port} after {timeout} s")


def commands(num_clients=4):
    """The commands a deployment runs, one per process, as lists of arguments."""
    # no `uv sync` at run time: the app's dependencies are the course's, already installed (and
    # nothing may be downloaded)
    superlink = [_executable("flower-superlink"), "--insecure", "--port", str(SUPERLINK),
                 "--disable-runtime-dependency-installation"]
    supernodes = [[_executable("flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{SUPERLINK}",
                   "--port", str(FIRST_SUPERNODE + i),
                   "--node-config", f"partition-id={i} num-partitions={num_clients}"] for i in range(num_clients)]
    return superlink, supernodes


def write_connection(flwr_home):
    """The Flower config that tells ``flwr run`` where the local SuperLink's Control API is."""
    path = Path(flwr_home) / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
                    f'address = "127.0.0.1:{SUPERLINK}"\ninsecure = true\n', encoding="utf-8")
    return path


def launch(num_clients=4, rounds=3, scheme="dirichlet", timeout=900, out=None):
    """Start a SuperLink and ``num_clients`` SuperNodes, run the app to the end, stop them all.

    Parameters
    ----------
    num_clients : int, default=4
        SuperNodes; each holds one part of digits' training set.
    rounds : int, default=3
    scheme : {"dirichlet", "iid"}
    timeout : float, default=900
        Seconds before the run is abandoned.
    out : file, optional
        Where the processes' output goes (default: this process's stdout).

    Returns
    -------
    int
        ``flwr run``'s exit status (0 when the run finished).
    """
    check_int(num_clients, "num_clients", min_value=2, max_value=50)
    check_int(rounds, "rounds", min_value=1)
    check_choice(scheme, "scheme", ("dirichlet", "iid"))
    busy = [p for p in (SUPERLINK, *range(FIRST_SUPERNODE, FIRST_SUPERNODE + num_clients)) if not _port_free(p)]
    if busy:
        raise RunError(f"ports {busy} on 127.0.0.1 are in use: is another SuperLink or SuperNode running?")
    out = out or sys.stdout
    home = tempfile.mkdtemp(prefix="mlsec-flwr-")
    # the SuperLink and SuperNodes start Flower's other executables (flower-superexec) by name
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "FLWR_HOME": home, "TF_CPP_MIN_LOG_LEVEL": "2"}
    write_connection(home)
    superlink, supernodes = commands(num_clients)
    processes = []
    try:
        processes.append(subprocess.Popen(superlink, env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT))
        _wait_for_port(SUPERLINK, processes[0], 60)
        for command in supernodes:
            processes.append(subprocess.Popen(command, env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT))
        run = [_executable("flwr"), "run", str(APP_DIR), CONNECTION, "--stream",
               "--run-config", f'num-server-rounds={rounds} num-clients={num_clients} scheme="{scheme}"']
        return subprocess.run(run, env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(home, ignore_errors=True)
