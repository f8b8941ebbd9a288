# end the process the default mode forks workers from (the judge's oldest child that runs the fork
# server, forked before any keeper), so that the next student's worker cannot start; then leave (code 3: no server found)
import os
import signal


def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[19])  # parent, start time


judge = stat(os.getppid())[0]  # the worker's parent is its keeper; the keeper's, the judge
servers = []  # the judge's children: its fork server (a fork of the judge itself), and the keepers it adopted
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        parent, started = stat(pid)
    except (OSError, IndexError, ValueError):
        continue
    if parent == judge:
        servers.append((started, int(pid)))
if not servers:
    os._exit(3)
os.kill(min(servers)[1], signal.SIGKILL)
os._exit(0)
