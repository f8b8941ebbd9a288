"""The grader against a student who wants marks without the skill (issue 13's threat model).

Each file in ``tests/cheats/`` is one cheat, written as a student would, graded as ex0 (a second
each) in the default mode and under ``--sandbox``: none may reach full marks, and each failure
says why. ex0's checks are the cheapest; the protections they test are the grader's, shared by
every exercise."""
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from mlsec_lessons.grading import grade, grade_many, sandbox

CHEATS = Path(__file__).parent / "cheats"
# each cheat in the default mode runs in make test-fast; under bubblewrap again in make test (slow)
MODES = [pytest.param(False, id="default"),
         pytest.param(True, id="sandbox", marks=[pytest.mark.slow, pytest.mark.skipif(not sandbox.available(),
                                                                                     reason=str(sandbox.problem()))])]


def messages(report):
    return " ".join(report.failed().values()) + " " + report.note


@pytest.mark.parametrize("use_sandbox", MODES)
@pytest.mark.parametrize("cheat", ["reexport_library", "wrap_library"])
def test_the_library_answers_earn_nothing(cheat, use_sandbox):
    report = grade("ex0", path=CHEATS / f"{cheat}.py", sandbox=use_sandbox)
    assert report.score == 0, report.table()
    assert "from the course library, which this exercise asks you to write yourself" in messages(report)
    assert "mlsec_lessons.metrics.attack_success_rate" in messages(report)


@pytest.mark.parametrize("use_sandbox", MODES)
def test_the_reference_is_not_in_the_students_process(use_sandbox):
    report = grade("ex0", path=CHEATS / "reference_from_sys_modules.py", sandbox=use_sandbox)
    assert report.score == 0, report.table()
    assert "does not define attack_success_rate" in messages(report)


@pytest.mark.parametrize("use_sandbox", MODES)
def test_a_forged_record_changes_nothing(use_sandbox):
    report = grade("ex0", path=CHEATS / "forge_the_record.py", sandbox=use_sandbox)
    assert report.score == 0 and report.total == 35 and len(report.checks) == 26, report.table()
    assert "exited with code 0" in messages(report) or "cannot read" in messages(report)


@pytest.mark.parametrize("use_sandbox", MODES)
def test_deleting_the_temp_dirs_changes_nothing(use_sandbox):
    report = grade("ex0", path=CHEATS / "delete_the_temp_dirs.py", sandbox=use_sandbox)
    assert report.total == 35, report.table()
    assert {c.name for c in report.checks if c.passed} <= {"mrs_is_one_minus_asr", "mrs_rejects_rates_outside_0_1"}


@pytest.mark.parametrize("use_sandbox", MODES)
def test_hostile_exceptions_fail_only_their_checks(use_sandbox):
    report = grade("ex0", path=CHEATS / "hostile_errors.py", sandbox=use_sandbox)
    failed = report.failed()
    assert report.total == 35 and not failed.get("mrs_is_one_minus_asr", "") , report.table()
    assert "raised KeyboardInterrupt" in failed["asr_ignores_already_misclassified"]
    assert "could not be printed" in failed["privacy_loss_separates_perfectly"]
    assert "called exit(0)" in failed["security_coverage_needs_every_control"]


@pytest.mark.slow  # six (three) gradings: make test runs it, make test-fast does not
@pytest.mark.parametrize("use_sandbox", MODES)
def test_files_graded_by_one_judge_do_not_reach_each_other(use_sandbox):
    """grade_many: a cheat graded before an honest file (in the same judge) changes neither grade."""
    solution = Path(__file__).resolve().parents[1] / "solutions" / "ex0_security_metrics.py"
    forged, hostile, honest = grade_many("ex0", [CHEATS / "forge_the_record.py", CHEATS / "hostile_errors.py",
                                                 solution], sandbox=use_sandbox)
    assert forged.score == 0 and forged.total == 35 and len(forged.checks) == 26, forged.table()
    assert "raised KeyboardInterrupt" in hostile.failed()["asr_ignores_already_misclassified"], hostile.table()
    assert honest.full_marks, honest.table()


def test_killing_the_fork_server_costs_only_the_killer():
    """The default mode forks workers from a server (grading/forkserver.py); a student who kills it
    scores nothing, and the next file of the same judge still starts, as a new process."""
    solution = Path(__file__).resolve().parents[1] / "solutions" / "ex0_security_metrics.py"
    # the second file's worker was asked for before the kill; the third's, after it
    killer, *honest = grade_many("ex0", [CHEATS / "kill_the_fork_server.py", solution, solution])
    assert killer.score == 0 and "exited with code 0" in messages(killer), killer.table()
    assert all(report.full_marks for report in honest), [report.table() for report in honest]


@pytest.mark.slow  # waits out a time limit or a bomb
@pytest.mark.parametrize("use_sandbox", MODES)
def test_a_lingering_process_is_killed_in_time(use_sandbox):
    marker = Path("/tmp/mlsec-cheat-linger.pid")
    marker.unlink(missing_ok=True)
    start = time.monotonic()
    report = grade("ex0", path=CHEATS / "linger.py", timeout=5, check_timeout=1, sandbox=use_sandbox)
    assert time.monotonic() - start < 5 + 15, report.table()
    assert report.score < report.total
    time.sleep(0.5)
    if marker.exists():  # default mode: the child wrote its pid; it must be gone (or a zombie: dead,
        pid = int(marker.read_text())  # waiting for a PID 1 that, in some containers, never reaps)
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            state = "gone"
        if state not in ("gone", "Z", "X"):
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"the double-forked child {pid} outlived the grading (state {state})")


@pytest.mark.slow  # bubblewrap: make test
def test_the_solutions_on_disk_are_hidden_by_the_sandbox():
    # in the default mode the course folder is readable (documented); the sandbox hides it
    if not sandbox.available():
        pytest.skip(str(sandbox.problem()))
    report = grade("ex0", path=CHEATS / "read_the_solutions.py", sandbox=True)
    assert report.score == 0, report.table()
    assert "No such file" in messages(report) or "FileNotFoundError" in messages(report)


def test_the_report_says_how_it_was_isolated():
    assert "process" in grade("ex0", solutions=True, checks=["example"]).isolation


def test_sandbox_refuses_to_degrade(monkeypatch):
    sandbox.problem.cache_clear()
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    try:
        with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap"):
            grade("ex0", solutions=True, sandbox=True)
    finally:
        sandbox.problem.cache_clear()


@pytest.mark.slow  # bubblewrap: make test
@pytest.mark.skipif(not sandbox.available(), reason=str(sandbox.problem()))
def test_reference_scores_full_marks_in_the_sandbox():
    report = grade("ex0", solutions=True, sandbox=True)
    assert report.full_marks, report.table()
    assert report.isolation == sandbox.LEVEL


def test_the_fork_server_holds_nothing_of_the_graders(monkeypatch):
    """The fork server is a copy of the judge from before the judge read its key and the grader's
    environment (which the grader starts it without): a worker that reads the server's /proc finds
    neither the grader's environment nor the pipes of the key and the record."""
    monkeypatch.setenv("MLSEC_PROBE_SECRET", "the instructor's token")
    report = grade("ex0", path=CHEATS / "inspect_the_fork_server.py", checks=["example"])
    found = json.loads(report.failed()["mrs_is_one_minus_asr"].split("PROBE")[1])
    # its environment was read, and is its own; its files are stdin, the judge's output (twice) and its socket
    assert found == {"secret": False, "pytest": False, "path": True, "fds": 4, "stdin": "/dev/null",
                     "output_twice": True, "sockets": 1, "pipes": 0, "forked": True}, found


def probe(tmp_path, monkeypatch, use_sandbox):
    """Grade tests/cheats/probe.py from a student's folder beside a classmate's, with a secret in
    the grader's environment and a server on 127.0.0.1; return what the submission could reach."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    alice.mkdir(), bob.mkdir()
    (bob / "ex0_security_metrics.py").write_text("bob's work")
    path = alice / "ex0_security_metrics.py"
    path.write_text((CHEATS / "probe.py").read_text().replace("PORT = 0", f"PORT = {server.getsockname()[1]}"))
    monkeypatch.setenv("MLSEC_PROBE_SECRET", "the instructor's token")
    try:
        report = grade("ex0", path=path, checks=["example"], sandbox=use_sandbox)
    finally:
        server.close()
    return json.loads(report.failed()["mrs_is_one_minus_asr"].split("PROBE")[1])


def test_what_a_submission_reaches_by_default(tmp_path, monkeypatch):
    found = probe(tmp_path, monkeypatch, False)
    # the default mode isolates the judge, not the filesystem or the network (the README says so)
    assert found == {"secret_env": False, "read_solutions": True, "read_checks": True, "write_checks": False,
                     "read_classmate": True, "network": True, "own_file": True}


@pytest.mark.slow  # bubblewrap: make test
@pytest.mark.skipif(not sandbox.available(), reason=str(sandbox.problem()))
def test_what_a_submission_reaches_in_the_sandbox(tmp_path, monkeypatch):
    found = probe(tmp_path, monkeypatch, True)
    assert found == {"secret_env": False, "read_solutions": False, "read_checks": False, "write_checks": True,
                     "read_classmate": False, "network": False, "own_file": True}
    # the write went to the sandbox's own empty folder, never into the course
    assert not (Path(sandbox.mlsec_lessons.__file__).parent / "grading" / "checks" / "probe.txt").exists()


@pytest.mark.slow  # waits out a time limit or a bomb
@pytest.mark.parametrize("use_sandbox", MODES)
def test_a_memory_bomb_fails_its_check_in_bounded_time(use_sandbox):
    start = time.monotonic()
    report = grade("ex0", path=CHEATS / "memory_bomb.py", checks=["example"], sandbox=use_sandbox, timeout=60)
    assert time.monotonic() - start < 60
    message = report.failed()["mrs_is_one_minus_asr"]
    assert "MemoryError" in message or "memory" in message, message


@pytest.mark.slow  # waits out a time limit or a bomb
@pytest.mark.parametrize("use_sandbox", MODES)
def test_a_fork_bomb_is_stopped_by_the_process_limit(use_sandbox):
    start = time.monotonic()
    report = grade("ex0", path=CHEATS / "fork_bomb.py", checks=["example"], sandbox=use_sandbox, timeout=60,
                   check_timeout=30)
    assert time.monotonic() - start < 60
    message = report.failed()["mrs_is_one_minus_asr"]
    assert "started more than 64 processes" in message, message


def test_the_judge_reads_the_keepers_exit_code():
    from mlsec_lessons.grading import keeper, remote

    assert remote.TOO_MANY_PROCESSES == keeper.TOO_MANY_PROCESSES


# the library's answer, wrapped into each exercise's own API (the reference otherwise): each must
# lose the check it would pass, with the off-limits message
LIBRARY_IN_EACH_EXERCISE = [
    pytest.param("ex1", "    with tf.GradientTape() as tape:\n        tape.watch(x_adv)\n",
                 "    from mlsec_lessons import attacks\n"
                 "    gradient = attacks.input_gradient(model, x_adv, y)\n"
                 "    with tf.GradientTape() as tape:\n        tape.watch(x_adv)\n",
                 "pgd_step_matches_reference", "mlsec_lessons.attacks.input_gradient", id="ex1_attacks"),
    pytest.param("ex2", "        x = [np.asarray(v, dtype=np.int64) for v in client_vectors]\n",
                 "        result = masking.simulate_round(client_vectors, self.threshold, dropouts=dropouts, seed=0)\n"
                 "        self.masked_vectors_ = dict(result.server_view.masked)\n"
                 "        return result.total\n",
                 "secure_aggregate_returns_the_exact_sum", "mlsec_lessons.federated.masking.simulate_round",
                 id="ex2_masking"),
    pytest.param("ex3", "        now = int(time.time())\n        claims = {",
                 "        from mlsec_lessons.deployment import auth\n"
                 "        return auth.issue_token(self.secret, sub, role, models=list(models), ttl=ttl,\n"
                 "                                aud=self.audience, iss=self.issuer)\n"
                 "        now = int(time.time())\n        claims = {",
                 "issued_token_has_the_required_claims", "mlsec_lessons.deployment.auth.issue_token",
                 id="ex3_auth"),
    pytest.param("ex4", "    text = reply.lower()\n",
                 "    from mlsec_lessons.llm import guards\n"
                 "    return guards.letter_guard(reply, secret)\n"
                 "    text = reply.lower()\n",
                 "output_guard_sees_through_separators", "mlsec_lessons.llm.guards.letter_guard", id="ex4_guards"),
]


@pytest.mark.slow  # a grading run of every exercise (TensorFlow in the judge and the worker)
@pytest.mark.parametrize("exercise, old, new, check, name", LIBRARY_IN_EACH_EXERCISE)
def test_the_library_answers_earn_nothing_in_each_exercise(exercise, old, new, check, name, tmp_path):
    from mlsec_lessons.grading.exercises import solution_variant

    # 60 s a check, not the exercise's own limit: the ex4 variant imports mlsec_lessons.llm, and with it
    # TensorFlow, which ex4's workers do not preload; on a loaded 2-core machine that import alone can take
    # longer than ex4's 10 s, and the check would fail on time before it found the library's function.
    report = grade(exercise, solution_variant(exercise, old, new, tmp_path), checks=[check], check_timeout=60)
    assert report.score == 0, report.table()
    assert name in messages(report) and "asks you to write yourself" in messages(report), report.table()


def test_the_capstone_sandbox_shows_what_the_checklist_points_at():
    from mlsec_lessons.governance import checklist
    from mlsec_lessons.grading.runner import declared

    items = checklist.course_checklist(model_card_file="/c.json", audit_log_file="/a.log", coverage_file="/s.json")
    evidence = {e.target.split("::")[0].split("#")[0] for item in items.items for e in item.evidence
                if e.kind != "function" and not e.target.startswith("/")}
    shown = set(declared("capstone", "SANDBOX_FILES"))
    assert evidence | {"requirements.lock"} == shown
    assert not [f for f in shown if "solutions" in f or "grading" in f]
