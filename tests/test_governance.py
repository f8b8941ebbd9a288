"""Lesson 09's governance code: audit queries refuse a tampered log, measurements agree with the attacks and
counts they come from, a model card refuses what was not measured, Security Coverage is computed from checks
that run (and that fail against an insecure server), and the checklist's evidence exists."""
import json
import math
import shutil
import ssl
import types

import httpx
import numpy as np
import pytest
from test_server import make_deployment

from mlsec_lessons import attacks, course, metrics
from mlsec_lessons.cache import fingerprint
from mlsec_lessons.deployment import artifacts, keys, server, tls
from mlsec_lessons.deployment.audit import AuditLog, anchor_path
from mlsec_lessons.governance import audit_query, checklist, controls, coverage, measure
from mlsec_lessons.governance.measure import Measurement
from mlsec_lessons.governance.model_card import CARD_FILE, ModelCard, cards_table

KEY = bytes(range(32))


# ------------------------------------------------------------------ audit trails
@pytest.fixture
def log(tmp_path):
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, KEY)
    entries = [("alice", "/v1/models/digits/predict", 200, "00:00:01"),
               ("alice", "/v1/models/digits/reload", 403, "00:00:02"),
               (None, "/v1/models/digits/reload", 401, "00:00:03"),
               ("ops", "/v1/models/digits/reload", 200, "00:00:04"),
               ("bob", "/v1/models/fraud/predict", 429, "00:00:05")]
    for sub, p, status, t in entries:
        audit.append(sub=sub, method="POST", path=p, status=status, decision="allow" if status < 400 else "deny",
                     time=f"2026-01-01T{t}.000+00:00")
    audit.close()
    return path


def test_queries_answer_who_did_what_and_when(log):
    df = audit_query.load_audit_log(log, KEY)
    assert df.attrs["verified"] and df["seq"].tolist() == [1, 2, 3, 4, 5]
    assert audit_query.query(df, path="/v1/models/*/reload")["status"].tolist() == [403, 401, 200]
    assert audit_query.query(df, sub=["alice", "ops"], decision="allow")["seq"].tolist() == [1, 4]
    assert audit_query.query(df, status=[401, 429])["seq"].tolist() == [3, 5]
    assert audit_query.query(df, model="digits").empty  # no entry here recorded a model
    window = audit_query.query(df, since="2026-01-01T00:00:02", until="2026-01-01 00:00:04+00:00")
    assert window["seq"].tolist() == [2, 3, 4]
    counts = audit_query.decisions_by(df, "sub")
    assert counts.loc["alice", "total"] == 2 and counts.loc[audit_query.UNAUTHENTICATED, "deny"] == 1


@pytest.mark.parametrize("tamper, first_bad", [
    (lambda rows: rows[:1] + [rows[1].replace('"decision":"deny"', '"decision":"allow"')] + rows[2:], 2),
    (lambda rows: rows[:2] + rows[3:], 3),
    (lambda rows: rows[:-1], 5),
])
def test_a_log_that_does_not_verify_answers_nothing(log, tmp_path, tamper, first_bad):
    copy = tmp_path / "copy" / "audit.jsonl"
    copy.parent.mkdir()
    copy.write_text("\n".join(tamper(log.read_text().splitlines())) + "\n")
    shutil.copy(anchor_path(log), anchor_path(copy))
    with pytest.raises(audit_query.AuditIntegrityError, match="does not verify") as e:
        audit_query.load_audit_log(copy, KEY)
    assert e.value.report.first_bad == first_bad
    assert not audit_query.load_audit_log(copy, KEY, verify=False).attrs["verified"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(decision="maybe"), "decision must be among"),
    (dict(since="2026-01-02", until="2026-01-01"), "is after until"),
    (dict(since="yesterday-ish"), "since must be a date"),
    (dict(sub=3), "sub must be str"),
    (dict(status="200"), "status must be int"),
])
def test_bad_queries_are_value_errors(log, kwargs, message):
    df = audit_query.load_audit_log(log, KEY)
    with pytest.raises(ValueError, match=message):
        audit_query.query(df, **kwargs)


# ------------------------------------------------------------------ measurements
@pytest.fixture(scope="module")
def linear():
    """A fixed linear model on 2-D points: the label is the larger coordinate (x0 > x1 -> class 0)."""
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.set_weights([np.eye(2, dtype="float32"), np.zeros(2, "float32")])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (400, 2)).astype("float32")
    return types.SimpleNamespace(model=model, x=x, y=np.argmax(x, axis=1))


def test_accuracy_counts_and_interval(linear):
    y = linear.y.copy()
    y[:40] = 1 - y[:40]  # 40 wrong labels: exactly 360 of 400 correct
    m = measure.clean_accuracy(linear.model, linear.x, y)
    assert m.value == 0.9 and m.n == 400 and m.interval[0] < 0.9 < m.interval[1]


def test_robust_accuracy_is_the_pgd_result_and_never_above_clean(linear):
    m = measure.robust_accuracy(linear.model, linear.x, linear.y, eps=0.1, seed=3)
    # eps_step=None is the course's one rule (attacks.default_eps_step), the same as attacks.pgd's
    x_adv = attacks.pgd(linear.model, linear.x, linear.y, 0.1, steps=40, eps_step=attacks.default_eps_step(0.1, 40),
                        seed=3)
    assert m.value == np.mean(np.argmax(linear.model.predict(x_adv, verbose=0), axis=1) == linear.y)
    # the optimum, away from the clip bounds: a point flips iff |x0 - x1| < 2 eps (each coordinate moves eps)
    assert m.value == pytest.approx(np.mean(np.abs(linear.x[:, 0] - linear.x[:, 1]) >= 0.2), abs=0.01)
    assert m.params["eps"] == 0.1 and m.params["steps"] == 40 and m.params["norm"] == "L-inf"
    assert m.params["eps_step"] == attacks.default_eps_step(0.1, 40) == 0.1 * 2.5 / 40
    assert m.params["attack success rate"] == pytest.approx(1 - m.value)  # the clean model is always right
    with pytest.raises(ValueError, match="positive budget"):
        measure.robust_accuracy(linear.model, linear.x, linear.y, eps=0.0)


def test_membership_tpr_matches_a_hand_count():
    rng = np.random.default_rng(0)
    is_member = np.r_[np.ones(300, bool), np.zeros(500, bool)]
    score = np.r_[rng.normal(1, 1, 300), rng.normal(0, 1, 500)]
    m = measure.membership_tpr(is_member, score, "toy", fpr=0.02)
    eleventh = np.sort(score[~is_member])[-11]  # above it: 10 of 500 non-members, FPR 2%
    assert m.value == pytest.approx(np.mean(score[is_member] > eleventh))
    assert m.params["n members"] == 300 and m.params["n non-members"] == 500
    with pytest.raises(ValueError, match="cannot be measured with 500 non-members"):
        measure.membership_tpr(is_member, score, "toy", fpr=0.001)


def test_membership_on_a_model_uses_its_losses(linear):
    m = measure.membership(linear.model, linear.x[:200], linear.y[:200], linear.x[200:], linear.y[200:], fpr=0.01)
    assert m.params["n members"] == 200 and 0.3 <= m.params["auc"] <= 0.7  # the same model on both halves


def test_dp_guarantee_reads_the_accountant_or_says_inf():
    from mlsec_lessons.cache import PrivacySpend

    spend = PrivacySpend(epsilon=4.5, delta=1e-5, noise_multiplier=1.1, sample_rate=0.05, steps=200, l2_norm_clip=1.0)
    run = types.SimpleNamespace(model=object(), privacy=spend)  # what train_dp_sgd returns, in shape
    m = measure.dp_guarantee(run)
    assert m.value == 4.5 and m.params["delta"] == 1e-5 and m.params["steps"] == 200
    assert measure.dp_guarantee(spend).value == 4.5
    assert measure.dp_guarantee(types.SimpleNamespace(privacy=None)).value == math.inf  # trained without DP
    assert measure.dp_guarantee(types.SimpleNamespace()).value == math.inf


@pytest.mark.parametrize("args, message", [
    (("accuracy", 1.2, "how"), "in \\[0, 1\\]"),
    (("accuracy", 0.5, " "), "method must say"),
    (("robustness", 0.5, "how"), "kind must be one of"),
    (("dp epsilon", -1.0, "how"), "epsilon must be >= 0"),
    (("accuracy", float("nan"), "how"), "in \\[0, 1\\]"),
])
def test_measurement_validation(args, message):
    with pytest.raises(ValueError, match=message):
        Measurement(*args)


@pytest.fixture
def signed(tmp_path):
    private, public = keys.generate_signing_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    d = tmp_path / "model"
    d.mkdir()
    (d / "model.keras").write_bytes(b"weights")
    (d / "input.json").write_text("{}")
    artifacts.sign_dir(d, private)
    return types.SimpleNamespace(dir=d, private=private, public=public)


def test_artifact_record_is_made_only_after_the_signature_verifies(signed):
    record = measure.artifact(signed.dir, signed.public)
    assert record.model_file == "model.keras"
    assert record.model_sha256 == artifacts.file_sha256(signed.dir / "model.keras")
    assert record.public_key_sha256 == measure.public_key_fingerprint(signed.public)
    (signed.dir / "model.keras").write_bytes(b"weightz")
    with pytest.raises(artifacts.IntegrityError, match="changed: model.keras"):
        measure.artifact(signed.dir, signed.public)


# ------------------------------------------------------------------ model card
def measurements():
    return [Measurement("accuracy", 0.97, "held-out", n=540, interval=(0.95, 0.98)),
            Measurement("robust accuracy", 0.8, "PGD-40", n=540, interval=(0.76, 0.83),
                        params={"eps": 0.1, "steps": 40, "eps_step": 0.01, "norm": "L-inf",
                                "attack success rate": 0.2}),
            Measurement("dp epsilon", math.inf, "not trained with DP"),
            Measurement("membership tpr", 0.01, "loss threshold", n=800, interval=(0.002, 0.03),
                        params={"fpr": 0.01, "auc": 0.52, "advantage": 0.05, "n members": 300, "n non-members": 500})]


def test_card_takes_only_measurements_one_of_each_kind():
    with pytest.raises(ValueError, match="is a float, not a Measurement"):
        ModelCard.from_measurements("m", [0.999], intended_use="x", training_data={})
    with pytest.raises(ValueError, match="two measurements of kind 'accuracy'"):
        ModelCard.from_measurements("m", measurements()[:1] * 2, intended_use="x", training_data={})
    with pytest.raises(ValueError, match="robustness must be a Measurement of kind 'robust accuracy'"):
        ModelCard("m", "x", {}, robustness=measurements()[0])
    with pytest.raises(ValueError, match="intended_use must be a non-empty string"):
        ModelCard.from_measurements("m", [], intended_use="", training_data={})


def test_unmeasured_fields_show_and_strict_rendering_refuses():
    card = ModelCard.from_measurements("m", measurements()[:2], intended_use="x", training_data={"name": "d"})
    assert card.missing() == ["privacy", "membership", "artifact"]
    text = card.to_markdown()
    assert "| membership inference | not measured |" in text and "| robust accuracy | 0.800 |" in text
    with pytest.raises(ValueError, match="not measured: privacy, membership, artifact"):
        card.to_markdown(strict=True)


def test_card_json_round_trip_is_valid_json_with_infinite_epsilon(signed, tmp_path):
    card = ModelCard.from_measurements("m", measurements(), intended_use="x", training_data={"n": 3},
                                       artifact=measure.artifact(signed.dir, signed.public),
                                       not_measured={"fairness": "no attributes"})
    text = card.to_json(tmp_path / "card.json")
    assert json.loads(text)["privacy"]["value"] == "inf"  # strict JSON: no Infinity token
    back = ModelCard.load(tmp_path / "card.json")
    assert back == card and back.privacy.value == math.inf
    text = card.to_markdown(strict=True)
    assert "| not measured |" not in text and "- fairness: no attributes" in text
    table = cards_table([card])
    assert table.loc["m", "robust accuracy"] == 0.8


# ------------------------------------------------------------------ Security Coverage
def test_coverage_comes_from_the_checks_and_agrees_with_metrics():
    rng = np.random.default_rng(0)
    inventory, expected = [], {}
    for i in range(8):
        states = rng.random(rng.integers(1, 5)) < 0.8
        expected[f"c{i}"] = {f"k{j}": bool(s) for j, s in enumerate(states)}
        inventory.append(coverage.Component(f"c{i}", [coverage.Control(f"k{j}", lambda s=s: bool(s))
                                                       for j, s in enumerate(states)]))
    report = coverage.measure(inventory)
    assert report.inventory == expected
    assert report.coverage() == metrics.security_coverage(expected)
    assert report.coverage("control") == metrics.security_coverage(expected, level="control")


def test_an_unimplemented_control_counts_as_missing():
    report = coverage.measure([coverage.Component("log", [coverage.Control("chain", lambda: True),
                                                          coverage.Control("append-only copy")])])
    assert report.coverage() == 0.0 and report.gaps()[0]["status"] == "not implemented"
    assert not report.summary().loc["log", "protected"]


def test_broken_checks_and_bad_inventories_fail_loudly():
    def crash():
        raise OSError("disk gone")

    with pytest.raises(RuntimeError, match="'api' / 'auth' raised OSError: disk gone"):
        coverage.measure([coverage.Component("api", [coverage.Control("auth", crash)])])
    with pytest.raises(ValueError, match="must return True/False"):
        coverage.measure([coverage.Component("api", [coverage.Control("auth", lambda: "yes")])])
    with pytest.raises(ValueError, match="at least one Control"):
        coverage.Component("api", [])
    with pytest.raises(ValueError, match="listed twice"):
        coverage.measure([coverage.Component("a", [coverage.Control("x")])] * 2)
    with pytest.raises(ValueError, match="non-empty sequence of Component"):
        coverage.measure([])


# ------------------------------------------------------------------ the live probes
@pytest.fixture(scope="module")
def live(tmp_path_factory):
    d = make_deployment(tmp_path_factory.mktemp("governance"))
    cert, cert_key = tls.self_signed_cert(d.folder / "cert.pem", d.folder / "key.pem")
    with server.BackgroundServer(model_dir=d.model_dir, secret_file=d.secret_file, public_key=d.public,
                                 audit_log=d.audit, rate=5.0, burst=10, ssl_certfile=cert, ssl_keyfile=cert_key) as srv:
        with httpx.Client(base_url=srv.url, verify=ssl.create_default_context(cafile=str(cert)), timeout=20) as client:
            yield types.SimpleNamespace(d=d, client=client, key=server.audit_key(secret_file=d.secret_file))


def insecure_app():
    """A server with none of the controls: every request succeeds."""
    from fastapi import FastAPI, Request

    app = FastAPI()
    described = {"models": [{"name": "digits", "input": {"shape": [8, 8, 1], "min": 0.0, "max": 1.0}}]}

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def anything(path: str, request: Request):
        await request.body()
        return described

    return app


API_PROBES = {"alg none": lambda c, s: controls.refuses_unsigned_token(c, "digits"),
              "expired": lambda c, s: controls.refuses_expired_token(c, s, "digits"),
              "roles": lambda c, s: controls.refuses_role_escalation(c, s, "digits"),
              "rate": lambda c, s: controls.enforces_rate_limit(c, s, max_requests=60),
              "body": lambda c, s: controls.limits_body_size(c, s, "digits"),
              "input": lambda c, s: controls.validates_input(c, s, "digits"),
              "headers": lambda c, s: controls.sends_security_headers(c),
              "tls": lambda c, s: controls.serves_tls(c)}


def test_api_probes_pass_on_the_course_server_and_fail_on_an_insecure_one(live):
    passed = {name: probe(live.client, live.d.secret) for name, probe in API_PROBES.items()}
    assert all(ok for ok, _ in passed.values()), passed
    with server.BackgroundServer(insecure_app()) as srv, httpx.Client(base_url=srv.url, timeout=20) as client:
        failed = {name: probe(client, live.d.secret) for name, probe in API_PROBES.items()}
    assert not any(ok for ok, _ in failed.values()), failed


def test_the_inventory_of_a_live_deployment(live, tmp_path):
    d = live.d
    x, y = np.zeros((4, 8, 8, 1), "float32"), np.arange(4)
    card = ModelCard.from_measurements("m", measurements(), intended_use="x",
                                       training_data={"fingerprint": fingerprint(x, y)},
                                       artifact=measure.artifact(d.model_dir, d.public))
    card.to_json(d.model_dir / CARD_FILE)
    artifacts.sign_dir(d.model_dir, d.private)
    inventory = controls.deployment_inventory(
        client=live.client, model="digits", secret=d.secret, secret_file=d.secret_file, model_dir=d.model_dir,
        public_key=d.public, signing_key=d.private, audit_log=d.audit, audit_key=live.key, card=card,
        x_train=x, y_train=y, policy={"eps": 0.1, "min_robust_accuracy": 0.7, "max_epsilon": 8.0})
    report = coverage.measure(inventory)
    status = {(r["component"], r["control"]): r["status"] for r in report.rows}
    failed = sorted(k for k, v in status.items() if v == "failed")
    assert failed == [("model", "DP epsilon <= 8.0"), ("model artifact", "encrypted at rest")], report.gaps()
    assert [c for c, ok in report.summary()["protected"].items() if ok] == ["prediction API"]
    assert report.coverage() == pytest.approx(1 / 7)
    with pytest.raises(ValueError, match="policy lacks"):
        controls.deployment_inventory(client=live.client, model="digits", secret=d.secret, secret_file=d.secret_file,
                                      model_dir=d.model_dir, public_key=d.public, signing_key=d.private,
                                      audit_log=d.audit, audit_key=live.key, card=card, x_train=x, y_train=y,
                                      policy={"eps": 0.1})


def test_file_probes_catch_what_they_claim_to(live, signed, tmp_path):
    # an edited log, a directory without a card, a world-readable key, a key in the repository, a loose pin
    assert live.client.get("/healthz").status_code == 200  # the log has at least one entry with status 200
    log = tmp_path / "audit.jsonl"
    shutil.copy(live.d.audit, log)
    shutil.copy(anchor_path(live.d.audit), anchor_path(log))
    assert controls.log_verifies(log, live.key)[0] and controls.detects_log_tampering(log, live.key)[0]
    log.write_text(log.read_text().replace('"status":200', '"status":201', 1))
    assert not controls.log_verifies(log, live.key)[0]
    assert controls.signature_verifies(signed.dir, signed.public)[0]
    assert controls.detects_artifact_tampering(signed.dir, signed.public)[0]
    assert not controls.card_signed_with_artifact(signed.dir, signed.public)[0]
    assert not controls.encrypted_at_rest(signed.dir)[0]
    assert controls.refuses_pickle()[0]
    (signed.dir / "model.keras").write_bytes(b"changed")
    assert not controls.signature_verifies(signed.dir, signed.public)[0]
    loose = tmp_path / "loose.pem"
    loose.write_text("x")
    loose.chmod(0o644)
    assert not controls.files_private(signed.private, loose)[0] and controls.files_private(signed.private)[0]
    root = course.repo_root()
    assert not controls.outside_repository(root, root / "README.md")[0]
    lock = tmp_path / "requirements.lock"
    lock.write_text("# pins\nnumpy==2.0.0\nscipy>=1.0\n")
    assert controls.dependencies_pinned(lock) == (False, "1 of 2 pinned with ==")
    assert controls.dependencies_pinned(root / "requirements.lock")[0]


# ------------------------------------------------------------------ the checklist
def test_course_checklist_points_at_evidence_that_exists(tmp_path):
    for name in ("card.json", "audit.jsonl", "coverage.json"):
        (tmp_path / name).write_text("{}")
    items = checklist.course_checklist(model_card_file=tmp_path / "card.json", audit_log_file=tmp_path / "audit.jsonl",
                                       coverage_file=tmp_path / "coverage.json")
    assert items.check() >= 30
    rows = items.to_frame().set_index(["framework", "ref"])
    assert set(rows.index.get_level_values(0)) == {"GDPR", "EU AI Act", "NIST AI RMF"}
    for ref in [("GDPR", "Art. 17"), ("EU AI Act", "Art. 6, Annex III"), ("EU AI Act", "Art. 14")]:
        assert rows.loc[ref, "status"] == "not covered" and rows.loc[ref, "evidence"] == "-"
    assert "| EU AI Act | Art. 12 |" in items.render()
    (tmp_path / "coverage.json").unlink()  # an artifact of the run goes missing: every item citing it fails
    with pytest.raises(checklist.MissingEvidence, match="coverage.json does not exist") as e:
        items.render()
    assert len(e.value.missing) >= 3


def test_missing_evidence_of_every_kind_is_named():
    items = checklist.Checklist([checklist.Item("X", "1", "r", "covered", [
        checklist.Evidence("file", "no/such/file"),
        checklist.Evidence("function", "mlsec_lessons.metrics.no_such_function"),
        checklist.Evidence("test", "tests/test_metrics.py::test_that_was_never_written"),
        checklist.Evidence("section", "notebooks/07_secure_deployment.ipynb#9. A section that is not there"),
        checklist.Evidence("function", "mlsec_lessons.metrics.security_coverage"),
        checklist.Evidence("test", "tests/test_audit_log.py::test_modified_entry_is_named[3]"),
        checklist.Evidence("section", "notebooks/07_secure_deployment.ipynb#5. The audit log")])])
    with pytest.raises(checklist.MissingEvidence) as e:
        items.check()
    assert [why.split()[0] for _, _, why in e.value.missing] == ["file", "function", "tests/test_metrics.py",
                                                                 "notebooks/07_secure_deployment.ipynb"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(status="not covered", evidence=[checklist.Evidence("file", "README.md")], note="n"), "lists evidence"),
    (dict(status="covered"), "without evidence"),
    (dict(status="partial", evidence=[checklist.Evidence("file", "README.md")]), "note must say what is missing"),
    (dict(status="done"), "status must be one of"),
])
def test_item_rules(kwargs, message):
    with pytest.raises(ValueError, match=message):
        checklist.Item("GDPR", "Art. 1", "r", **kwargs)
    with pytest.raises(ValueError, match="must look like 'file::name'"):
        checklist.Evidence("test", "tests/test_metrics.py")


def test_checklist_has_gdpr_art_22_and_dates_every_row(tmp_path):
    items = checklist.course_checklist(model_card_file=tmp_path / "c.json", audit_log_file=tmp_path / "a.jsonl",
                                       coverage_file=tmp_path / "s.json")
    rows = items.to_frame().set_index(["framework", "ref"])
    assert rows.loc[("GDPR", "Art. 22"), "status"] == "not covered"
    assert "lesson 10" in rows.loc[("GDPR", "Art. 22"), "not covered / note"]
    assert "planned" not in rows.loc[("EU AI Act", "Art. 72"), "not covered / note"]
    assert (rows["applies"] != "-").all()
    assert (rows.xs("EU AI Act")["applies"] == "high-risk: 2 Dec 2027 (Annex III), 2 Aug 2028 (Annex I)").all()
    assert rows.xs("GDPR")["applies"].eq("since 25 May 2018").all()
    for name in ("c.json", "a.jsonl", "s.json"):
        (tmp_path / name).write_text("{}")
    assert "| applies |" in items.render().splitlines()[0]


def test_ai_act_timeline_reads_the_dates_on_a_given_day():
    import datetime

    checked = checklist.ai_act_timeline()
    assert checked.columns[-1] == "on 2026-12-06" and checklist.TIMELINE_CHECKED == datetime.date(2026, 12, 6)
    when = dict(zip(checked["from"], checked.iloc[:, -1]))
    assert when["2 Feb 2025"] == when["2 Aug 2025"] == "applies"
    assert when["2 Dec 2027"] == when["2 Aug 2028"] == "not yet"
    later = checklist.ai_act_timeline(on=datetime.date(2028, 1, 1))
    assert list(later.iloc[:, -1]) == ["applies"] * 5 + ["not yet"]
    with pytest.raises(TypeError, match="datetime.date"):
        checklist.ai_act_timeline(on="2026-12-06")


def test_audit_timeline_spreads_a_burst_over_log_entries():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from mlsec_lessons.governance import plots

    t0 = pd.Timestamp("2026-12-06T00:00:00Z")
    df = pd.DataFrame({"time": [t0 + pd.Timedelta(milliseconds=ms) for ms in (0, 1, 2, 150)],
                       "sub": ["a", "a", None, "b"], "decision": ["allow", "deny", "deny", "allow"]})
    ax = plots.plot_audit_timeline(df)
    xs = sorted(x for coll in ax.collections for x, _ in coll.get_offsets())
    assert xs == [1, 2, 3, 4] and "150 ms" in ax.get_xlabel()
    ax_ms = plots.plot_audit_timeline(df, x="ms")
    assert sorted(x for coll in ax_ms.collections for x, _ in coll.get_offsets()) == pytest.approx([0, 1, 2, 150])
    with pytest.raises(ValueError, match="'entry' or 'ms'"):
        plots.plot_audit_timeline(df, x="seconds")
    plt.close("all")


def test_governance_errors_share_the_course_base_and_integrity_is_not_bad_input():
    from mlsec_lessons.errors import MLSecError, SecurityError
    from mlsec_lessons.stubs import MarkerError
    from mlsec_lessons.theft import QueryRefused

    # a tampered audit log must not be swallowed by an `except ValueError` written for bad input
    assert issubclass(audit_query.AuditIntegrityError, SecurityError)
    assert not issubclass(audit_query.AuditIntegrityError, ValueError)
    for error in (checklist.MissingEvidence, MarkerError, QueryRefused):
        assert issubclass(error, MLSecError), error
