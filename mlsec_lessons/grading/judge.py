"""The judge's process: it grades one or more files of an exercise, one after another.

Each file gets a pytest session of its own (with :mod:`.plugin`): its own collection, every fixture
made again (the reference solution included), its own worker for the student's code, and its own
record. What carries over from one file to the next is only what was imported (TensorFlow, the
library, the checks' modules), so a judge that grades twenty files pays for those imports once.
Nothing of a file's grading reaches the next one: the judge holds no student code, only the plain
data the last worker sent back, and that goes with the session.

The grader (:mod:`.runner`) starts it as ``python -m mlsec_lessons.grading.judge``, with a
scrubbed environment, the plan (which files to grade with which checks) in a JSON file, and on a
pipe the record's HMAC key, the reference's path and the grader's environment. The judge forks its
fork server (:mod:`.forkserver`) first, then reads the pipe (and closes it) before any student code
runs.
"""
import argparse
import ctypes
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from . import plugin, remote
from .forkserver import ForkServer

PR_SET_DUMPABLE = 4
MAX_SECRET = 1 << 20  # bytes: the key, the reference's path and the grader's environment


def non_dumpable():
    """No process of the same user can read this one's memory or open its file descriptors."""
    try:
        ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the sandbox is what protects the judge there
        pass


def forget_the_last_file():
    """Between two files: drop the reference module and Keras' global state (layer-name counters,
    graphs), so that each file is graded as a fresh judge would grade it. The last session's
    objects go with Python's own garbage collection: a full one here costs 0.2 s a file."""
    sys.modules.pop(remote.REFERENCE_MODULE, None)
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session(free_memory=False)


def start_forkserver(config, sandbox):
    """The default mode's fork server (:mod:`.forkserver`), forked from this process once it has
    imported the exercise's ``PRELOAD``, which the judge needs too; None in the sandbox, or where this
    process cannot adopt the keepers it forks (then each worker is a new process, as in the sandbox).
    Called before the judge holds anything of the grader's."""
    if sandbox or not ForkServer.possible():
        return None
    home = Path(tempfile.mkdtemp(prefix="mlsec-forkserver-"))
    try:
        return ForkServer(json.loads(config).get("preload", ()), remote.scrubbed_environment(home), home).start()
    except ImportError:  # then each worker, a new process, says what is missing
        shutil.rmtree(home, ignore_errors=True)
        return None


def new_worker(impl, module_name, config, sandbox, forkserver=None):
    """The student's worker (not started): its own folder, the limits and shadows of ``config``
    (JSON), and the bubblewrap sandbox with ``sandbox`` (else forked by ``forkserver``, if any)."""
    config = json.loads(config)
    workdir = tempfile.mkdtemp(prefix="mlsec-worker-")
    box = None
    if sandbox:
        from .sandbox import HOME, Sandbox

        box = Sandbox(config.get("shadows"), config.get("files", ()))
        # inside, each shadow is bound over its module's own file, so the worker loads it from there
        config = {**config, "shadows": {m: (original, str(Path(original).resolve()))
                                        for m, (original, _) in config.get("shadows", {}).items()}}
        env = remote.scrubbed_environment(HOME)
    else:
        env = remote.scrubbed_environment(Path(workdir) / "home")
    return remote.Worker(impl, module_name, workdir, config, box, env, forkserver)


def runs_code(item):
    """Whether ``item``'s file runs: it is there and not only collected (a missing file's checks are
    collected for their points, and each one fails)."""
    return "--collect-only" not in item["args"] and os.path.isfile(item["impl"])


def started_worker(item, options, forkserver):
    """The worker of ``item``'s file, started: it imports the student's file (TensorFlow, often)
    while the judge goes on. None for a file that is not there or is only collected."""
    if not runs_code(item):
        return None
    worker = new_worker(item["impl"], options.module_name, options.worker_config, options.sandbox, forkserver)
    worker.prestart()
    return worker


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mlsec_lessons.grading.judge")
    parser.add_argument("--grade-fd", type=int, required=True, help="the pipe to report on")
    parser.add_argument("--key-fd", type=int, required=True, help="the pipe the key and reference are read from")
    parser.add_argument("--plan", required=True, help='JSON: [{"impl": file, "args": [pytest args]}, ...]')
    parser.add_argument("--module-name", default="student_solution", help="the name the student's module gets")
    parser.add_argument("--worker-config", default="{}", help="JSON: the workers' limits and off-limits shadows")
    parser.add_argument("--sandbox", action="store_true", help="run each student's worker in the sandbox")
    options, pytest_args = parser.parse_known_args(argv)
    with open(options.plan, encoding="utf-8") as f:
        plan = json.load(f)
    # Nothing is read from the grader's folder after this: a student's file can find it and delete it (the
    # cheat delete_the_temp_dirs.py does), and pytest needs a working directory that still exists.
    os.chdir("/")
    # first the fork server, a copy of this process, which has nothing of the grader's yet; none (and
    # none of its imports, TensorFlow's often) for a plan whose files are all missing
    forkserver = start_forkserver(options.worker_config, options.sandbox) if any(map(runs_code, plan)) else None
    with os.fdopen(options.key_fd, "rb") as pipe:  # before any student code exists anywhere
        secret = json.loads(pipe.read(MAX_SECRET))
    if "env" in secret:  # the grader's environment, which the checks and the reference run in
        os.environ.clear()
        os.environ.update(secret["env"])
        tempfile.tempdir = None  # the workers' folders go where the grader's TMPDIR says, not in the start's
    non_dumpable()  # and only then does a student's process start
    stream = os.fdopen(options.grade_fd, "w", buffering=1, encoding="utf-8")
    try:
        grade_plan(plan, options, pytest_args, stream, secret, forkserver)
    finally:
        if forkserver is not None:
            forkserver.stop()
            shutil.rmtree(forkserver.cwd, ignore_errors=True)
    return 0


def grade_plan(plan, options, pytest_args, stream, secret, forkserver):
    key = secret["key"].encode()
    upcoming = started_worker(plan[0], options, forkserver)
    for i, item in enumerate(plan):
        recorder = plugin.Recorder(stream, key, item["index"])
        recorder.note()  # this file's grading starts now: the grader starts its clock
        # this file's worker started before; the next file's starts now, beside it (at most two at a time)
        worker, upcoming = upcoming, started_worker(plan[i + 1], options, forkserver) if i + 1 < len(plan) else None
        plugin.JUDGING = plugin.Judging(secret["ref"], recorder, worker)
        try:
            pytest.main([*item["args"], *pytest_args, f"--impl={item['impl']}"])
        finally:
            plugin.JUDGING = None
            if worker is not None:
                worker.stop()
                shutil.rmtree(worker.workdir, ignore_errors=True)
        forget_the_last_file()


if __name__ == "__main__":
    sys.exit(main())
