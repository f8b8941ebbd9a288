"""The fork server (grading/forkserver.py): a worker forked from it is the worker a new process
would be (same channel, folder, environment and limits, fresh random state, nothing of the
server's open), its keeper is the judge's child, and when the server is gone the judge starts
its workers as new processes.

Each test runs as a small judge of its own (``JUDGE``, a subprocess): the server needs the
judge to be a child subreaper, which the test process must not become."""
import ast
import json
import subprocess
import sys
import textwrap

import pytest

from mlsec_lessons.grading import runner
from mlsec_lessons.grading.exercises import known

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server needs Linux")

JUDGE = textwrap.dedent("""
    import json, os, sys
    from mlsec_lessons.grading import judge, processes, remote
    from mlsec_lessons.grading.forkserver import Forked

    student, kill_server = sys.argv[1], sys.argv[2] == "kill"
    config = json.dumps({"preload": ["numpy"], "limits": {"processes": 64}})
    server = judge.start_forkserver(config, False)
    found = {}
    workers = [judge.new_worker(student, "student_solution", config, False, server) for _ in range(2)]
    for i, worker in enumerate(workers):
        if kill_server and i == 1:
            server.process.kill()
            server.process.wait()
        worker.start()
        keeper = worker.process.pid
        parent = int(open(f"/proc/{keeper}/stat").read().rsplit(")", 1)[1].split()[1])
        found[i] = {"forked": isinstance(worker.process, Forked), "keeper_parent": parent,
                    "judge": os.getpid(), "state": remote.Student(worker).state(),
                    "home": str(worker.workdir / "home")}
    for worker in workers:
        keeper = worker.process.pid
        tree = processes.descendants(keeper)
        worker.stop()
        found[f"left_{keeper}"] = [p for p in tree if os.path.exists(f"/proc/{p}")
                                   and open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] not in "ZX"]
    server.stop()
    print("FOUND" + json.dumps(found))
""")

STUDENT = textwrap.dedent("""
    import os
    import numpy as np

    def state():
        fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
        return {"home": os.environ.get("HOME"), "cwd": os.getcwd(), "fds": fds,
                "random": float(np.random.random()), "argv": __import__("sys").argv,
                "parent": os.getppid()}
""")


def run_judge(tmp_path, kill_server=False):
    student = tmp_path / "student.py"
    student.write_text(STUDENT)
    done = subprocess.run([sys.executable, "-c", JUDGE, str(student), "kill" if kill_server else "keep"],
                          capture_output=True, text=True, timeout=120)
    assert "FOUND" in done.stdout, done.stdout + done.stderr
    return json.loads(done.stdout.split("FOUND", 1)[1])


def test_a_forked_worker_is_a_fresh_workers_equal(tmp_path):
    found = run_judge(tmp_path)
    first, second = found["0"], found["1"]
    for worker in (first, second):
        assert worker["forked"]
        assert worker["keeper_parent"] == worker["judge"]  # the judge adopted the keeper: it waits for it
        state = worker["state"]
        assert state["home"] == state["cwd"] == worker["home"]  # its own folder and environment
        assert len(state["fds"]) == 5 + 1  # stdin, the log twice, its channel; and the listing's own
        assert state["argv"] == [str(tmp_path / "student.py")]
    assert first["state"]["random"] != second["state"]["random"]  # not the server's random state, twice
    assert all(left == [] for key, left in found.items() if key.startswith("left_"))  # stop() ends each tree


def test_without_the_server_the_next_worker_is_a_new_process(tmp_path):
    found = run_judge(tmp_path, kill_server=True)
    assert found["0"]["forked"] and not found["1"]["forked"]
    assert found["1"]["state"]["home"] == found["1"]["home"]  # the student's file still runs, as before
    assert all(left == [] for key, left in found.items() if key.startswith("left_"))


@pytest.mark.parametrize("exercise", known())
def test_what_the_server_imports_holds_nothing_off_limits(exercise):
    """The server is the judge forked after it imported the exercise's ``PRELOAD`` (third-party libraries
    only): a module of the course loaded by then would be the real one in every worker, not its shadow.
    So by then the judge holds its own modules and the grader's, and none that is off limits."""
    preload = runner.declared(exercise, "PRELOAD", [])
    probe = ("import sys, importlib\nfrom mlsec_lessons.grading import forkserver, worker\nworkers = set(sys.modules)\n"
             "import mlsec_lessons.grading.judge\njudge = set(sys.modules)\n"
             f"for name in {preload!r}: importlib.import_module(name)\n"
             "course = lambda names: sorted(m for m in names if m.startswith('mlsec_lessons'))\n"
             "print(course(judge - workers), course(set(sys.modules) - judge), course(sys.modules), sep='\\n')")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    judge_adds, preload_adds, loaded = done.stdout.strip().splitlines()
    assert judge_adds == "['mlsec_lessons.grading.judge']", done.stdout + done.stderr
    assert preload_adds == "[]", done.stdout + done.stderr
    assert all(not name.startswith("mlsec_lessons") for name in preload)
    off_limits = {module for name in known() for module in runner.off_limits(name)}
    assert off_limits and not off_limits & set(ast.literal_eval(loaded)), loaded


def test_every_exercise_says_what_its_workers_import(tmp_path):
    for exercise in known():
        assert runner.declared(exercise, "PRELOAD") is not None, exercise
        config = runner.worker_config(exercise, tmp_path / exercise, 60, False)
        assert config["preload"] == runner.declared(exercise, "PRELOAD")


PLAN_ONLY = textwrap.dedent("""
    import json, os, sys
    from mlsec_lessons.grading import judge

    started = []
    judge.start_forkserver = lambda *args: started.append(args)
    judge.grade_plan = lambda *args: None  # what the judge would grade does not matter here
    key_in, key_out = os.pipe()
    os.write(key_out, json.dumps({"key": "k", "ref": None}).encode())
    os.close(key_out)
    judge.main([f"--grade-fd={os.open(os.devnull, os.O_WRONLY)}", f"--key-fd={key_in}", f"--plan={sys.argv[1]}"])
    print("STARTED", len(started))
""")


@pytest.mark.parametrize("present, collect_only, servers", [(False, False, 0), (True, True, 0), (True, False, 1)])
def test_the_fork_server_starts_only_for_a_plan_that_runs_a_file(tmp_path, present, collect_only, servers):
    """A class folder without this exercise's file costs no fork server (nor the TensorFlow it imports)."""
    impl = tmp_path / "ex1_adversarial_defense.py"
    if present:
        impl.write_text("x = 1\n")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps([{"impl": str(impl), "index": 0, "args": ["--collect-only"] if collect_only else []}]))
    done = subprocess.run([sys.executable, "-c", PLAN_ONLY, str(plan)], capture_output=True, text=True, timeout=60)
    assert f"STARTED {servers}" in done.stdout, done.stdout + done.stderr
