"""The judge's process: it grades one or more files of an exercise, one after another.

Each file gets a pytest session of its own (with :mod:`.plugin`): its own collection, every fixture
made again (the reference solution included), its own worker for the student's code, and its own
record. What carries over from one file to the next is only what was imported (TensorFlow, the
library, the checks' modules), so a judge that grades twenty files pays for those imports once.
Nothing of a file's grading reaches the next one: the judge holds no student code, only the plain
data the last worker sent back, and that goes with the session.

The grader (:mod:`.runner`) starts it as ``python -m mlsec_lessons.grading.judge``, with the
record's HMAC key and the reference's path on a pipe (read, and closed, before any student code
runs) and the plan, which files to grade with which checks, in a JSON file.
"""
import argparse
import ctypes
import gc
import json
import os
import shutil
import sys

import pytest

from . import plugin, remote

PR_SET_DUMPABLE = 4
MAX_SECRET = 65536  # bytes: the key and the reference's path


def non_dumpable():
    """No process of the same user can read this one's memory or open its file descriptors."""
    try:
        ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the sandbox is what protects the judge there
        pass


def forget_the_last_file():
    """Between two files: drop the last session's objects and Keras' global state (layer-name
    counters, graphs), so that each file is graded as a fresh judge would grade it."""
    sys.modules.pop(remote.REFERENCE_MODULE, None)
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
    gc.collect()


def prestarted_worker(item, options):
    """The worker of ``item``'s file, started now (its import overlaps the grading before it), or
    None for a file that is not there or is only collected."""
    if "--collect-only" in item["args"] or not os.path.isfile(item["impl"]):
        return None
    settings = {"impl": item["impl"], "module_name": options.module_name, "worker_config": options.worker_config,
                "sandbox": options.sandbox}
    worker = plugin.new_worker(settings.get)  # the same worker the session would start
    worker.prestart()
    return worker


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mlsec_lessons.grading.judge")
    parser.add_argument("--grade-fd", type=int, required=True, help="the pipe to report on")
    parser.add_argument("--key-fd", type=int, required=True, help="the pipe the key and reference are read from")
    parser.add_argument("--plan", required=True, help='JSON: [{"impl": file, "args": [pytest args]}, ...]')
    options, common = parser.parse_known_args(argv)
    with os.fdopen(options.key_fd, "rb") as pipe:  # before any student code exists anywhere
        secret = json.loads(pipe.read(MAX_SECRET))
    non_dumpable()
    with open(options.plan, encoding="utf-8") as f:
        plan = json.load(f)
    worker_options = argparse.ArgumentParser(add_help=False)  # the session's own options, read here too
    worker_options.add_argument("--module-name", default="student_solution")
    worker_options.add_argument("--worker-config", default="{}")
    worker_options.add_argument("--sandbox", action="store_true")
    settings, _ = worker_options.parse_known_args(common)
    stream = os.fdopen(options.grade_fd, "w", buffering=1, encoding="utf-8")
    key = secret["key"].encode()
    for i, item in enumerate(plan):
        recorder = plugin.Recorder(stream, key, item["index"])
        recorder.note()  # this file's grading starts now: the grader starts its clock
        # the session starts this file's worker; the next file's starts now, beside it (at most two at a time)
        upcoming = prestarted_worker(plan[i + 1], settings) if i + 1 < len(plan) else None
        judging = plugin.JUDGING = plugin.Judging(secret["ref"], recorder, worker=item.pop("worker", None))
        try:
            pytest.main([*item["args"], *common, f"--impl={item['impl']}"])
        finally:
            plugin.JUDGING = None
            if judging.worker is not None:  # ended by the session already, unless pytest stopped before it began
                judging.worker.stop()
                shutil.rmtree(judging.worker.workdir, ignore_errors=True)
        if upcoming is not None:
            plan[i + 1]["worker"] = upcoming
        forget_the_last_file()
    return 0


if __name__ == "__main__":
    sys.exit(main())
