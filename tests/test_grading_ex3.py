"""Exercise 3 (secure deployment): the solution scores full marks, and each
classic mistake, made by editing one line of the solution, loses the points of its check."""
import pytest

from mlsec_lessons.grading import grade, sandbox


@pytest.mark.slow  # a grading run per case: make test runs it, make test-fast does not
def test_solution_scores_full_marks():
    report = grade("ex3", solutions=True, sandbox=sandbox.available())  # the variants run without it
    assert report.full_marks, report.table()
    assert len(report.checks) >= 30


MISTAKES = [
    pytest.param('options={"require": REQUIRED_CLAIMS})',
                 'options={"require": REQUIRED_CLAIMS, "verify_signature": False})',
                 {"bad_signature", "alg_none", "expired", "wrong_audience"}, id="verify_signature_off"),
    pytest.param("self.secret, algorithms=[ALGORITHM]",
                 'self.secret, algorithms=[jwt.get_unverified_header(token)["alg"]]',
                 {"alg_from_header"}, id="algorithms_from_the_token_header"),
    pytest.param("    for w in model.get_weights():", "    for w in []:",
                 {"digest_covers_the_weights", "verify_rejects_a_tampered_model"}, id="hash_over_config_only"),
    pytest.param('options={"require": REQUIRED_CLAIMS})',
                 'options={"require": REQUIRED_CLAIMS, "verify_aud": False})',
                 {"wrong_audience"}, id="no_audience_check"),
    pytest.param("            self.public_key.verify(", "            (lambda *a: None)(",
                 {"verify_rejects_an_edited_registry"}, id="signature_not_checked"),
    pytest.param('    if ROLES[claims["role"]] < ROLES[required_role]:', "    if False:",
                 {"role_escalation"}, id="no_role_check"),
    # the exact boundaries of the stated rules
    pytest.param("if not ttl > 0:", "if not ttl > 1:", {"issue_token_accepts_the_shortest_ttl"}, id="refuses_ttl_1"),
    pytest.param("if not ttl > 0:", "if ttl == 0:", {"issue_token_refuses_bad_arguments"}, id="accepts_a_negative_ttl"),
    pytest.param("len(secret) < MIN_SECRET_BYTES", "len(secret) <= MIN_SECRET_BYTES",
                 {"accepts_a_secret_of_32_bytes"}, id="refuses_a_32_byte_secret"),
    pytest.param("leeway=self.leeway", "leeway=60",
                 {"clock_skew_leeway_is_ten_seconds", "leeway_is_the_configured_one"}, id="leeway_of_a_minute"),
    pytest.param("leeway=self.leeway", "leeway=5", {"clock_skew_leeway_is_ten_seconds"}, id="leeway_of_5_s"),
    pytest.param("leeway=self.leeway", "leeway=10", {"leeway_is_the_configured_one"}, id="leeway_hard_coded"),
    pytest.param('if ROLES[claims["role"]] < ROLES[required_role]:',
                 'if ROLES[claims["role"]] <= ROLES[required_role]:',
                 {"each_role_may_do_its_own_actions"}, id="same_rank_refused"),
]


@pytest.mark.slow  # a grading run per case (one judge for all): make test runs it, make test-fast does not
@pytest.mark.parametrize("old, new, must_fail", MISTAKES)
def test_mistake_loses_points(graded_variants, old, new, must_fail):
    # only the checks that must fail run (a parametrized check's case by its id): seconds, not ten
    cases = {(p.values[0], p.values[1]): (p.values[0], p.values[1], sorted(p.values[2])) for p in MISTAKES}
    report = graded_variants("ex3", cases)[(old, new)]
    assert must_fail <= set(report.failed()), f"expected {sorted(must_fail)} to fail:\n{report.table()}"
    assert not report.full_marks
    for check in must_fail:
        message = report.failed()[check]
        assert message and "not implemented" not in message and "Traceback" not in message, message
