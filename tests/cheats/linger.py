# a double-forked, setsid child that outlives the grading and keeps every inherited fd open
import os
import time

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        open("/tmp/mlsec-cheat-linger.pid", "w").write(str(os.getpid()))
        time.sleep(100)
    os._exit(0)
time.sleep(0.5)


def attack_success_rate(*args):
    time.sleep(100)
