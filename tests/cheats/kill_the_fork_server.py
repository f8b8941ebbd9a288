# end the process the default mode forks workers from (the judge's oldest child that runs the fork
# server), so that the next student's worker cannot start; then leave (code 3: no server found)
import os
import signal


def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[19])  # parent, start time


judge = stat(os.getppid())[0]  # the worker's parent is its keeper; the keeper's, the judge
servers = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read()
        parent, started = stat(pid)
    except (OSError, IndexError, ValueError):
        continue
    if parent == judge and b"forkserver import main" in command:
        servers.append((started, int(pid)))
if not servers:
    os._exit(3)
os.kill(min(servers)[1], signal.SIGKILL)
os._exit(0)
