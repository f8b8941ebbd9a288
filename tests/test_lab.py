"""`make lab` really starts JupyterLab: run the target headless and ask the server for /lab."""
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from lab_process import free_port, stop

ROOT = Path(__file__).resolve().parents[1]



@pytest.mark.slow  # starts JupyterLab as make lab does
@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "jupyter").exists(), reason="needs the make-built .venv")
def test_make_lab_serves_jupyterlab(tmp_path):
    port, token = free_port(), "mlsec-test-token"
    args = f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.token={token}"
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path))
    proc = subprocess.Popen(["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, body = time.monotonic() + 90, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=5) as r:
                    body = r.read().decode()
                    status = r.status
                break
            except OSError:
                time.sleep(1)
        if body is None:
            proc.kill()
            output = proc.communicate(timeout=10)[0].decode(errors="replace")[-3000:]
            pytest.fail(f"JupyterLab did not answer on port {port} (make exited {proc.returncode}):\n{output}")
        assert status == 200 and "JupyterLab" in body
    finally:
        stop(proc)

