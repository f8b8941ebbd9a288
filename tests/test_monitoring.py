"""Security monitoring (lesson 08): windows, the drift test, the adversarial-input monitor, the
timeline and the alerts read back from the audit log, and the monitors inside the real server."""
import json

import httpx
import numpy as np
import pytest
from test_server import MODEL, app_kwargs, make_deployment

from mlsec_lessons.deployment import auth, server
from mlsec_lessons.deployment.audit import AuditLog, verify_log
from mlsec_lessons.monitoring import (
    AdversarialInputMonitor,
    DriftMonitor,
    MonitorError,
    alerts,
    ks_drift,
    plot_timeline,
    timeline,
)
from mlsec_lessons.theft import PRADA, HttpVictim


class Threshold:
    """A stand-in detector: flags inputs whose mean is above 0.5."""

    def predict(self, x):
        return (np.asarray(x).reshape(len(x), -1).mean(1) > 0.5).astype(int)


def test_ks_drift_false_alarms_stay_near_alpha_and_shifts_are_found():
    rng = np.random.default_rng(0)
    reference = rng.random((400, 16))
    p_null = [ks_drift(reference, rng.random((50, 16)))[0] for _ in range(200)]
    assert np.mean(np.asarray(p_null) < 0.05) <= 0.08            # Bonferroni keeps the per-window rate at alpha or below
    p_shift, stat = ks_drift(reference, np.clip(rng.random((50, 16)) + 0.2, 0, 1))
    assert p_shift < 1e-6 and stat.shape == (16,)
    constant = np.zeros((100, 4))
    assert ks_drift(constant, np.zeros((10, 4)))[0] == 1.0       # a feature constant in both has not drifted
    with pytest.raises(ValueError, match="features"):
        ks_drift(reference, rng.random((50, 15)))
    with pytest.raises(ValueError, match="at least 2"):
        ks_drift(reference, rng.random((1, 16)))


def test_windows_span_requests_and_alert_once_per_client_episode():
    rng = np.random.default_rng(1)
    monitor = DriftMonitor(rng.random((500, 4)), window=20, alpha=0.01)
    assert monitor.observe("alice", rng.random((30, 4))) == []    # one window closed, 10 inputs wait
    assert len(monitor.windows_) == 1 and monitor.windows_[0]["subjects"] == {"alice": 20}
    shifted = 0.3 * rng.random((60, 4))
    first = monitor.observe("bob", shifted[:30])                 # window 2: alice 10 + bob 10, alarms
    more = monitor.observe("bob", shifted[30:])                  # bob's episode goes on: no new alert
    theirs = monitor.observe("mallory", 0.3 * rng.random((40, 4)))   # another client takes over: a new alert
    assert len(first) == 1 and more == [] and [a["sub"] for a in theirs] == ["mallory"]
    assert first[0]["clients"] == {"alice": 10, "bob": 10} and first[0]["sub"] == "bob"   # a tie: the newcomer
    assert [w["alarm"] for w in monitor.windows_] == [False, True, True, True, True, True]
    with pytest.raises(ValueError, match="window"):
        DriftMonitor(np.zeros((5, 4)), window=1).observe("a", np.zeros((1, 4)))
    with pytest.raises(ValueError, match="alpha"):
        DriftMonitor(np.zeros((5, 4)), window=2, alpha=2).observe("a", np.zeros((2, 4)))


def test_adversarial_input_monitor_reports_the_share_flagged():
    monitor = AdversarialInputMonitor(Threshold(), window=10, max_rate=0.2)
    x = np.r_[np.zeros((8, 3)), np.ones((2, 3))]                 # 20 %: not above the limit
    assert monitor.observe("a", x) == [] and monitor.windows_[0]["flagged"] == pytest.approx(0.2)
    fired = monitor.observe("b", np.r_[np.zeros((7, 3)), np.ones((3, 3))])
    assert len(fired) == 1 and "30%" in fired[0]["reason"]
    with pytest.raises(ValueError, match="max_rate"):
        AdversarialInputMonitor(Threshold(), window=2, max_rate=1.0).observe("a", np.zeros((2, 3)))


def test_timeline_lines_up_monitors_and_prada(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    rng = np.random.default_rng(2)
    drift, watch, prada = DriftMonitor(rng.random((300, 4)), window=25), AdversarialInputMonitor(Threshold(), 25), PRADA()
    for sub, x in (("alice", rng.random((150, 4))), ("eve", rng.random((150, 4)))):
        labels = rng.integers(0, 3, len(x))
        for m in (drift, watch):
            m.observe(sub, x)
        prada.observe(sub, x, labels)
    table = timeline(watch, drift, prada=prada)
    assert list(table["window"]) == list(range(12)) and {"flagged", "drift_p", "W alice", "W eve"} <= set(table)
    assert table.loc[5, "W alice"] == prada.streams_["alice"].history[149]   # W after alice's last query
    assert np.isnan(table.loc[3, "W eve"]) and table.loc[11, "W eve"] == prada.streams_["eve"].history[149]
    fig = plot_timeline(table, delta=0.95, alpha=0.01, max_rate=0.2, phases=[(0, 5, "alice"), (6, 11, "eve")])
    assert len(fig.axes) == 3
    with pytest.raises(ValueError, match="same windows"):
        timeline(watch, DriftMonitor(rng.random((300, 4)), window=25))
    with pytest.raises(ValueError, match="at least one"):
        timeline()


def test_alerts_are_read_back_from_the_audit_log(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", bytes(32))
    log.append(method="POST", status=200, sub="alice")
    log.append(event="alert", monitor="drift", sub="bob", reason="input drift")
    assert [a["sub"] for a in alerts(tmp_path / "audit.jsonl")] == ["bob"]
    with pytest.raises(ValueError, match="no audit log"):
        alerts(tmp_path / "missing.jsonl")


def test_the_server_runs_its_monitors_and_chains_their_alerts(tmp_path):
    d = make_deployment(tmp_path / "deploy")
    drift = DriftMonitor(np.random.default_rng(0).random((300, 8, 8, 1)) * 0.2, window=20)
    log = tmp_path / "audit.jsonl"
    with server.BackgroundServer(**app_kwargs(d, audit_log=log, monitors=[drift], rate=100.0, burst=100)) as srv:
        with HttpVictim(srv.url, auth.issue_token(d.secret, "kim", "user", models=[MODEL]), batch_size=10) as kim:
            kim.predict(np.random.default_rng(1).random((40, 8, 8, 1)))     # brighter than the reference
    found = alerts(log)
    assert [(a["monitor"], a["sub"], a["model"]) for a in found] == [("drift", "kim", MODEL)]
    assert len(drift.windows_) == 2 and all(w["alarm"] for w in drift.windows_)
    assert verify_log(log, server.audit_key(secret_file=d.secret_file)).ok


@pytest.mark.parametrize("make, name", [
    (lambda ref: DriftMonitor(ref, alpha=2.0), "alpha"),
    (lambda ref: DriftMonitor(ref, alpha=0.0), "alpha"),
    (lambda ref: DriftMonitor(ref, alpha=True), "alpha"),
    (lambda ref: DriftMonitor(ref, window=1), "window"),
    (lambda ref: DriftMonitor(ref[:1]), "reference"),
    (lambda ref: AdversarialInputMonitor(_Detector(), max_rate=1.0), "max_rate"),
    (lambda ref: AdversarialInputMonitor(object()), "detector"),
])
def test_monitor_settings_are_checked_when_the_monitor_is_built(make, name):
    with pytest.raises((ValueError, TypeError), match=name):  # alpha=True: a TypeError
        make(np.random.default_rng(0).random((100, 4)))


class _Detector:
    def predict(self, x):
        return np.zeros(len(x), dtype=int)


def test_a_window_is_cleared_only_after_its_evaluation_succeeds():
    rng = np.random.default_rng(0)
    monitor = DriftMonitor(rng.random((300, 4)), window=10)
    monitor.observe("alice", rng.random((6, 4)))
    monitor.alpha = 2.0                                   # broken after construction
    with pytest.raises(MonitorError, match="alpha") as e:
        monitor.observe("alice", rng.random((6, 4)))
    assert isinstance(e.value.__cause__, ValueError) and e.value.alerts == []
    monitor.alpha = 0.01
    evaluate = monitor.evaluate
    monitor.evaluate = lambda x: (_ for _ in ()).throw(RuntimeError("scipy broke"))
    with pytest.raises(MonitorError):
        monitor.observe("bob", rng.random((2, 4)))          # 14 inputs: one window is due, and fails
    assert monitor.windows_ == [] and len(monitor._x) == 14
    monitor.evaluate = evaluate
    monitor.observe("bob", rng.random((6, 4)))              # 20 inputs: both windows evaluated now
    assert [w["subjects"] for w in monitor.windows_] == [{"alice": 10}, {"alice": 2, "bob": 8}]
    assert len(monitor._x) == 0 and monitor.dropped_ == 0


def test_a_monitor_that_keeps_failing_holds_a_bounded_backlog():
    monitor = DriftMonitor(np.random.default_rng(0).random((300, 4)), window=5)
    monitor.evaluate = lambda x: (_ for _ in ()).throw(RuntimeError("always"))
    for _ in range(30):
        with pytest.raises(MonitorError):
            monitor.observe("mallory", np.zeros((5, 4)))
    assert len(monitor._x) == monitor.MAX_PENDING_WINDOWS * 5 and monitor.dropped_ == 150 - 50


def test_a_failing_monitor_is_recorded_in_the_audit_log_and_the_request_still_answers(tmp_path):
    d = make_deployment(tmp_path / "deploy")
    drift = DriftMonitor(np.random.default_rng(0).random((300, 8, 8, 1)), window=10)
    drift.alpha = 2.0                                     # misconfigured after construction
    log = tmp_path / "audit.jsonl"
    with server.BackgroundServer(**app_kwargs(d, audit_log=log, monitors=[drift], rate=100.0, burst=100)) as srv:
        with HttpVictim(srv.url, auth.issue_token(d.secret, "kim", "user", models=[MODEL]), batch_size=10) as kim:
            labels = kim.predict(np.random.default_rng(1).random((20, 8, 8, 1)))
    assert len(labels) == 20                              # both requests answered 200
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    errors = [e for e in entries if e.get("event") == "monitor-error"]
    assert len(errors) == 2 and errors[0]["monitor"] == "drift" and "alpha must be in (0, 1)" in errors[0]["error"]
    assert [e["status"] for e in entries if e.get("method") == "POST"] == [200, 200]
    assert len(drift._x) == 20 and drift.windows_ == []   # nothing evaluated, nothing lost
    assert verify_log(log, server.audit_key(secret_file=d.secret_file)).ok


class AlarmsThenFails(DriftMonitor):
    """Its first window alarms; every window after that fails to evaluate."""

    def evaluate(self, x):
        if self.windows_:
            raise RuntimeError("scipy broke")
        return {"drift_p": 0.0, "drift_ks": 1.0}, True, "drifted"


def test_a_failure_after_an_alarm_in_the_same_call_keeps_the_alert():
    monitor = AlarmsThenFails(np.random.default_rng(0).random((300, 4)), window=10)
    with pytest.raises(MonitorError, match="window 1 failed: RuntimeError: scipy broke") as e:
        monitor.observe("mallory", np.zeros((20, 4)))       # two windows: the first alarms, the second fails
    assert [a["sub"] for a in e.value.alerts] == ["mallory"] and e.value.alerts == monitor.alerts_
    assert len(monitor._x) == 10                             # the failed window waits


def test_the_server_records_an_alert_from_before_a_monitor_failed_in_the_same_request(tmp_path):
    d = make_deployment(tmp_path / "deploy")
    monitor = AlarmsThenFails(np.random.default_rng(0).random((300, 8, 8, 1)), window=10)
    log = tmp_path / "audit.jsonl"
    with server.BackgroundServer(**app_kwargs(d, audit_log=log, monitors=[monitor])) as srv:
        r = httpx.post(f"{srv.url}/v1/models/{MODEL}/predict", json={"instances": np.zeros((20, 8, 8, 1)).tolist()},
                       headers={"Authorization": f"Bearer {auth.issue_token(d.secret, 'mallory', 'user')}"})
    assert r.status_code == 200, r.text
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e.get("event") for e in entries] == ["alert", "monitor-error", None]
    assert entries[0]["sub"] == "mallory" and entries[0]["reason"] == "drifted"
    assert "scipy broke" in entries[1]["error"] and entries[2]["status"] == 200
