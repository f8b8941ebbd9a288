"""Checks for the capstone, a complete ML security system.

``impl`` is the student's module, ``ref`` the reference solution. The reference system is trained,
evaluated, deployed, monitored and audited once. Most checks then run *one* of the student's methods
on a copy of the reference's state, with the reference's other methods (:func:`isolated`): a mistake
in one deliverable costs that deliverable's points, and the message names it. Two checks train the
student's system (with the same settings both load one cached model), and the last one runs the
whole system on the student's code alone.

Tolerances were set from the reference over 5 training seeds (0-4), with seed 0 the one graded:
clean accuracy 0.865-0.907, PGD-40 robust accuracy 0.520-0.544 (another PGD seed moves it by
<= 0.006; FGSM gives 0.034-0.045 more, PGD-5 0.18-0.23 more, and the training set 0 to 0.02 more,
so that mistake is caught by the sample size, not the value), epsilon 5.475 for every seed,
membership TPR at 1% FPR 0.010-0.018, detector FPR on the clean validation images 0.052 (by
construction), share of the attack flagged 0.99-1.0 and of honest traffic 0.01-0.09, Security
Coverage 0.25. Without adversarial examples in DP-SGD the robust accuracy falls to 0.28.

The release policy is lesson 09's, fixed before anything was measured (robust accuracy >= 0.7 at
eps = 0.1, epsilon <= 8), and the reference fails its robustness half: that is reported, not
graded. A student's own model is judged against the reference's numbers, so the checks compare
coverage gaps with the model's own policy controls set aside.
"""
import itertools
import pickle
import time

import jwt
import numpy as np
import pytest

from mlsec_lessons.governance import measure
from mlsec_lessons.grading.plugin import kept

# the capstone is built from the course's parts, so the whole library is allowed
OFF_LIMITS = {}
# the course files the compliance checklist points at as evidence (lessons and tests, none of which
# holds the capstone's answers) and the lock file a control reads: the only files of the course
# besides the library that the student's code sees in the sandbox (tests/test_grading_cheats.py
# checks this list against the checklist)
SANDBOX_FILES = ["requirements.lock", "notebooks/00_course_map.ipynb", "notebooks/03_adversarial_training.ipynb",
                 "notebooks/04_differential_privacy.ipynb", "notebooks/07_secure_deployment.ipynb",
                 "notebooks/09_compliance_and_governance.ipynb", "notebooks/11_poisoning_and_backdoors.ipynb",
                 "tests/test_artifacts.py", "tests/test_attacks.py", "tests/test_audit_log.py",
                 "tests/test_server_audit.py"]

# the reference pipeline (about 10 s once the models are cached; 20 s more on a cold cache) runs in
# the first check's set-up, so one check may take that long; the solution's whole grading takes ~30 s
TIME_LIMIT = 300
CHECK_TIME_LIMIT = 150
# what the student's process needs before the file runs (the library's TensorFlow, server and
# accounting): imported once by the fork server that each worker is forked from (grading/forkserver.py)
PRELOAD = ["numpy", "tensorflow", "keras", "fastapi", "uvicorn", "httpx", "dp_accounting", "sklearn.metrics"]

SETTINGS = dict(eps=0.1, noise_multiplier=1.1, l2_norm_clip=1.0, batch_size=64, epochs=15, learning_rate=0.05,
                delta=1e-5, pgd_steps=40, membership_fpr=0.01, detector_fpr=0.05, window=50, token_ttl=300, seed=0)
CLEAN_TOLERANCE, ROBUST_TOLERANCE = 0.06, 0.04   # a student's own training run, against the reference's
SAME_MODEL_TOLERANCE = 0.015                     # one measurement of the same model (PGD's random start)
DETECTOR = "adversarial-input detector"


def points(n):
    return pytest.mark.points(n)


def isolated(impl, ref, method, state):
    """A system on a copy of the reference's ``state``, to run ``method`` on.

    For the reference itself: the reference's methods. For the student's code, which runs in its
    own process and never meets the reference's code: the student's system, given every part of
    the reference's state that can travel as data (models, measurements, keys, paths), so that a
    check of ``method`` starts from the reference's results rather than the student's."""
    if impl is ref:
        reference = {k: v for k, v in vars(ref.MLSecuritySystem).items() if k != method and not k.startswith("__")}
        system = object.__new__(type("Isolated", (ref.MLSecuritySystem,), reference))
        system.__dict__.update(state.__dict__)
        return system
    system = impl.MLSecuritySystem(**SETTINGS)
    for name, value in vars(state).items():
        try:
            setattr(system, name, value)
        except (TypeError, AttributeError, pickle.PicklingError):  # a running server, a lock: stays behind
            pass
    return system


def oracle_epsilon(q, steps):
    from mlsec_lessons.privacy import accounting

    return accounting.epsilon(SETTINGS["noise_multiplier"], q, steps, SETTINGS["delta"])


def named(measurement, kind, call):
    assert isinstance(measurement, measure.Measurement), (
        f"{call} returned {type(measurement).__name__}; it must return a governance.measure.Measurement, the value "
        "with its method and sample size")
    assert measurement.kind == kind, f"{call} returned a Measurement of kind {measurement.kind!r}, not {kind!r}"
    return measurement


# --------------------------------------------------------------------------- the reference, once
@pytest.fixture(scope="module")
def digits():
    import mlsec_lessons as ml

    ml.quiet()
    from mlsec_lessons.data import load_digits

    return load_digits()


@pytest.fixture(scope="module")
def workdir(exchange):
    """``workdir(name)``: a new folder the student's code can write to, inside the exchange folder
    (a ``Path`` there reaches the student's process as the path it has there, in the sandbox too)."""
    count = itertools.count()

    def make(name):
        folder = exchange / f"{name}-{next(count)}"
        folder.mkdir(parents=True)
        return folder
    return make


@pytest.fixture(scope="module")
def keypair(exchange):
    from mlsec_lessons.deployment import keys

    folder = exchange / "keys"  # the student's deploy() reads them: in the exchange folder, also in the sandbox
    folder.mkdir(exist_ok=True)
    return keys.generate_signing_key(folder / "sign.pem", folder / "sign.pub.pem")


@pytest.fixture(scope="module")
def ref_trained(ref, digits):
    """The reference trained and evaluated: once per judge (kept), a copy of it for each file."""
    def train():
        system = ref.MLSecuritySystem(**SETTINGS).train(digits)
        system.evaluate(digits)
        return system
    return kept("capstone ref_trained", train)


@pytest.fixture(scope="module")
def traffic(ref, ref_trained, digits):
    return ref.demo_traffic(ref_trained.model_, digits, eps=SETTINGS["eps"], seed=0)


@pytest.fixture(scope="module")
def ref_live(ref, ref_trained, digits, traffic, keypair, tmp_path_factory):
    """The reference deployed, monitored and audited; its server runs until the module ends."""
    system = isolated(ref, ref, "", ref_trained)
    work = tmp_path_factory.mktemp("reference")
    system.deploy(work, *keypair)
    try:
        system.monitor(traffic)
        system.compliance_report(work)
        yield system
    finally:
        system.close()


def run_isolated(impl, ref, method, state, *args):
    """(system, result, error) of the student's ``method`` run on a copy of ``state``."""
    system = isolated(impl, ref, method, state)
    try:
        return system, getattr(system, method)(*args), None
    except Exception as e:  # each check that needs the result re-raises it, with its own explanation
        return system, None, e


@pytest.fixture(scope="module")
def impl_live(impl, ref, ref_trained, traffic, keypair, workdir):
    """The student's system on the reference's trained state, deployed and monitored by the
    student's own code (the server it starts cannot travel between processes)."""
    system = isolated(impl, ref, "", ref_trained)
    try:
        system.deploy(workdir("live"), *keypair)
        system.monitor(traffic)
        setup = None
    except Exception as e:  # each check that needs the running system fails with it
        setup = e
    yield system, setup
    try:
        system.close()
    except Exception:
        pass


STAND_IN = "(the grader's stand-in: no server runs for this call)"


def own_hint(impl, ref, request, method, *args):
    """The NotImplementedError of the student's ``method`` itself, or None.

    When the set-up a check needs (the student's ``deploy``, ``monitor``) stops at a stub, the check
    cannot run, and the stub it stopped at is another method's. So that each method's check still
    shows that method's own hint, ``method(*args)`` runs once on a copy of the reference's deployed
    state (:func:`isolated`), with stand-ins for the server and client that cannot travel; only a
    NotImplementedError counts, anything else leaves the set-up's own error to be reported."""
    system = isolated(impl, ref, method, request.getfixturevalue("ref_live"))
    try:
        system.server_ = system.client_ = STAND_IN
        getattr(system, method)(*args)
    except NotImplementedError as e:
        return e
    except Exception:
        return None
    return None


def run_on(live, method, *args, hint=None):
    """(system, result, error) of ``method(*args)`` on the student's live system.

    When its set-up stopped at a stub, the error is ``hint()`` (:func:`own_hint`, the method's own
    stub) if that finds one, else the set-up's."""
    system, setup = live
    if isinstance(setup, NotImplementedError):  # the stub's hint, rather than what it leads to
        return system, None, (hint() if hint is not None else None) or setup
    try:
        return system, getattr(system, method)(*args), None
    except Exception as e:
        return system, None, e


def reraise(error, what):
    """NotImplementedError as it is (the grader shows its hint); anything else as one clear line."""
    if error is None:
        return
    if isinstance(error, NotImplementedError):
        raise error
    raise AssertionError(f"{what} raised {type(error).__name__}: {error}") from None


# --------------------------------------------------------------------------- 1. adversarial defense + privacy
@pytest.fixture(scope="module")
def impl_trained(impl, digits):
    system = impl.MLSecuritySystem(**SETTINGS)
    system.train(digits)
    return system


def trained_model(system):
    model = getattr(system, "model_", None)
    assert model is not None, "train(data) must set model_, the trained Keras model"
    return model


@points(2)
def test_trains_with_dp_on_adversarial_examples(impl_trained, digits):
    trained_model(impl_trained)
    run = getattr(impl_trained, "fitted_", None)
    assert run is not None and getattr(run, "privacy", None) is not None, (
        "train(data) must set fitted_, what dp_sgd.train_dp_sgd returned (its .privacy is the run's spend)")
    n = len(digits.x_train)
    got_eps = run.config.get("adversarial_eps", 0.0)
    assert got_eps == SETTINGS["eps"], (
        f"the model was trained on adversarial examples at eps={got_eps} (fitted_.config['adversarial_eps']); the "
        f"system is defended at eps={SETTINGS['eps']}: pass adversarial_eps=self.eps to dp_sgd.train_dp_sgd, so "
        "that DP-SGD learns from FGSM-RS examples")
    sigma = run.privacy.noise_multiplier
    assert sigma == SETTINGS["noise_multiplier"], (
        f"the model was trained with noise_multiplier={sigma}; the system's setting is "
        f"{SETTINGS['noise_multiplier']} (pass every DP setting of the constructor to dp_sgd.train_dp_sgd)")
    steps, q = SETTINGS["epochs"] * round(n / SETTINGS["batch_size"]), SETTINGS["batch_size"] / n
    got = run.privacy.epsilon
    assert got == pytest.approx(oracle_epsilon(q, steps), rel=1e-9), (
        f"the training run spent epsilon={got:.4g}; with the system's settings (batch {SETTINGS['batch_size']} of "
        f"{n}, {SETTINGS['epochs']} epochs) DP-SGD spends {oracle_epsilon(q, steps):.4g}")


@points(3)
def test_trained_model_is_robust_and_accurate(impl_trained, ref_trained, digits):
    model = trained_model(impl_trained)
    clean = measure.clean_accuracy(model, digits.x_test, digits.y_test).value
    robust = measure.robust_accuracy(model, digits.x_test, digits.y_test, eps=SETTINGS["eps"],
                                     eps_step=SETTINGS["eps"] / 10).value
    want_clean = ref_trained.evaluation_["accuracy"].value
    want_robust = ref_trained.evaluation_["robustness"].value
    assert robust >= want_robust - ROBUST_TOLERANCE, (
        f"your model keeps {robust:.3f} of the test images under PGD-40 at eps={SETTINGS['eps']}; the reference "
        f"keeps {want_robust:.3f} (training seeds move it by less than {ROBUST_TOLERANCE}). Plain DP-SGD keeps "
        "0.28: train on adversarial examples inside DP-SGD (adversarial_eps)")
    assert clean >= want_clean - CLEAN_TOLERANCE, (
        f"your model's clean test accuracy is {clean:.3f}; the reference reaches {want_clean:.3f} with the same "
        f"settings (training seeds move it by less than {CLEAN_TOLERANCE})")


# --------------------------------------------------------------------------- 2. measured security
@pytest.fixture(scope="module")
def impl_robustness(impl, ref, ref_trained, digits):
    """(result, error) of the student's ``measure_robustness(data)`` on the reference's model: its
    PGD-40 over the test set is the slowest measurement, so it runs once for the two checks that read it."""
    _, got, error = run_isolated(impl, ref, "measure_robustness", ref_trained, digits)
    return got, error


@points(2)
def test_robustness_measured_on_the_test_set(impl_robustness, ref_trained, digits):
    got, error = impl_robustness
    reraise(error, "measure_robustness(data)")
    got = named(got, "robust accuracy", "measure_robustness(data)")
    n_test, n_train = len(digits.y_test), len(digits.y_train)
    where = "the training images" if got.n == n_train else f"{got.n} inputs"
    assert got.n == n_test, (
        f"robust accuracy was measured on {where}; measure it on the {n_test} held-out test images: a model "
        "is attacked on inputs it has never seen (source mistake 5)")
    want = ref_trained.evaluation_["robustness"].value
    assert abs(got.value - want) <= SAME_MODEL_TOLERANCE, (
        f"measure_robustness gives {got.value:.3f} for the reference's model; PGD-40 at eps={SETTINGS['eps']} on "
        f"the test set gives {want:.3f}")


@points(2)
def test_robustness_measured_with_the_stated_pgd(impl_robustness, ref_trained):
    got, error = impl_robustness
    reraise(error, "measure_robustness(data)")
    got = named(got, "robust accuracy", "measure_robustness(data)")
    want = ref_trained.evaluation_["robustness"]
    steps, eps, eps_step = got.params.get("steps"), got.params.get("eps"), got.params.get("eps_step")
    assert got.value <= want.value + SAME_MODEL_TOLERANCE, (
        f"measure_robustness reports {got.value:.3f} ({got.method}); white-box PGD with {SETTINGS['pgd_steps']} "
        f"steps at eps={SETTINGS['eps']} leaves {want.value:.3f}. A weaker attack (FGSM, a few PGD steps) "
        "overstates robustness: the card must report the stated attack")
    assert steps == SETTINGS["pgd_steps"] and eps == SETTINGS["eps"], (
        f"the measurement says steps={steps}, eps={eps}; the system states PGD with pgd_steps="
        f"{SETTINGS['pgd_steps']} at eps={SETTINGS['eps']}")
    stated_step = SETTINGS["eps"] / 10
    assert isinstance(eps_step, (int, float)) and abs(eps_step - stated_step) <= 1e-9, (
        f"the measurement says eps_step={eps_step}; the system states PGD-{SETTINGS['pgd_steps']} with steps of "
        f"eps / 10 = {stated_step:g} (pass eps_step=self.eps / 10: robust_accuracy's default is the course's "
        "2.5 * eps / steps, a different attack)")


@points(3)
def test_epsilon_from_the_accountant(impl, ref, ref_trained, digits):
    _, got, error = run_isolated(impl, ref, "measure_privacy", ref_trained, digits)
    reraise(error, "measure_privacy(data)")
    got = named(got, "dp epsilon", "measure_privacy(data)")
    n = len(digits.x_train)
    q, steps = SETTINGS["batch_size"] / n, ref_trained.fitted_.privacy.steps
    want = oracle_epsilon(q, steps)
    why = ""
    if got.value == pytest.approx(oracle_epsilon(1.0, steps)):
        why = ": that is epsilon without amplification by sampling (sample_rate 1)"
    elif got.params.get("steps") not in (None, steps):
        why = f": that is epsilon for {got.params['steps']} steps"
    assert got.value == pytest.approx(want, rel=1e-6), (
        f"measure_privacy reports epsilon={got.value:.4g}; the accountant gives {want:.4g} for the run: sampling "
        f"rate batch_size / n = {SETTINGS['batch_size']}/{n} and the {steps} steps dp_sgd.train_dp_sgd ran "
        f"(fitted_.privacy.steps = epochs * round(n / batch_size)){why}")
    assert got.params.get("sample_rate") == pytest.approx(q) and got.params.get("steps") == steps, (
        f"the measurement's params say sample_rate={got.params.get('sample_rate')}, steps={got.params.get('steps')}; "
        f"the run had {q:.4f} and {steps}")


@points(2)
def test_membership_tpr_at_low_fpr(impl, ref, ref_trained, digits):
    _, got, error = run_isolated(impl, ref, "measure_membership", ref_trained, digits)
    reraise(error, "measure_membership(data)")
    got = named(got, "membership tpr", "measure_membership(data)")
    want = ref_trained.evaluation_["membership"]
    assert got.params.get("fpr") == SETTINGS["membership_fpr"], (
        f"the membership TPR is reported at {got.params.get('fpr')} FPR; the system states "
        f"membership_fpr={SETTINGS['membership_fpr']}: an attack matters when it is confident, at a low FPR")
    sizes = (got.params.get("n members"), got.params.get("n non-members"))
    assert sizes == (len(digits.y_train), len(digits.y_test)), (
        f"the attack used {sizes[0]} members and {sizes[1]} non-members; the members are the "
        f"{len(digits.y_train)} training images and the non-members the {len(digits.y_test)} test images")
    assert abs(got.value - want.value) <= 1e-6, (
        f"measure_membership gives TPR {got.value:.4f} for the reference's model; the loss-threshold attack "
        f"gives {want.value:.4f}")


# --------------------------------------------------------------------------- 3. secure deployment
@pytest.fixture(scope="module")
def impl_deployed(impl, ref, ref_trained, keypair, workdir):
    system, _, error = run_isolated(impl, ref, "deploy", ref_trained, workdir("deploy"), *keypair)
    yield system, error
    system.close()


@points(3)
def test_deploy_signs_what_it_serves(impl_deployed, keypair):
    from mlsec_lessons.deployment import artifacts
    from mlsec_lessons.governance.model_card import CARD_FILE

    system, error = impl_deployed
    # A bad value, or a failed signature check (IntegrityError, a SecurityError, reaches us by name).
    if isinstance(error, ValueError) or getattr(error, "type_name", "").endswith("IntegrityError"):
        raise AssertionError(f"deploy raised {type(error).__name__}: {error}. Write every file first (save, "
                             "encrypt), sign the folder after, and verify it before serving") from None
    reraise(error, "deploy(workdir, signing_key, public_key)")
    try:
        files = artifacts.verify_dir(system.release_, keypair[1])["files"]
    except artifacts.IntegrityError as e:
        raise AssertionError(f"the release folder does not verify: {e}") from None
    stored = [f for f in files if f.startswith("model.")]
    assert len(stored) == 1 and CARD_FILE in files, (
        f"the signed manifest lists {sorted(files)}; it must hold the model file and {CARD_FILE}")
    r = system.client_.get("/v1/models", headers={"Authorization": f"Bearer {system.issue_token('grader')}"})
    served = {m["name"]: m["model_sha256"] for m in r.json().get("models", [])} if r.status_code == 200 else {}
    assert served.get(system.model_name) == files[stored[0]], (
        f"the server serves {served}; it must serve {system.model_name!r} with the signed hash of {stored[0]}")


@points(1)
def test_deploy_encrypts_the_model_at_rest(impl_deployed):
    system, error = impl_deployed
    reraise(error, "deploy(workdir, signing_key, public_key)")
    names = sorted(p.name for p in system.release_.iterdir())
    assert "model.keras" not in names and "model.keras.enc" in names, (
        f"the release folder holds {names}; the model must be stored encrypted (model.keras.enc, "
        "artifacts.encrypt_file) and the plaintext removed")


def grader_token(system):
    """A user token for the student's deployment, made here with the deployment's secret, so that
    a check of deploy does not depend on the student's issue_token."""
    from mlsec_lessons.deployment import auth

    return auth.issue_token(system.secret_, "grader", "user", models=[system.model_name], ttl=120)


@points(2)
def test_deploy_serves_only_valid_pixels(impl_deployed, digits):
    system, error = impl_deployed
    reraise(error, "deploy(workdir, signing_key, public_key)")
    headers = {"Authorization": f"Bearer {grader_token(system)}"}

    def answer(image):
        r = system.client_.post(f"/v1/models/{system.model_name}/predict", headers=headers,
                                json={"instances": [image.tolist()]})
        return r.status_code

    image = np.asarray(digits.x_test[0], dtype=float)
    edges = image.copy()
    edges.flat[0], edges.flat[1] = 0.0, 1.0  # the range's ends themselves are valid pixels
    for name, valid in [("all 0.0", np.zeros_like(image)), ("all 1.0", np.ones_like(image)),
                        ("a test digit with pixels of exactly 0.0 and 1.0", edges)]:
        status = answer(valid)
        assert status == 200, (
            f"the deployed server answered HTTP {status} to an image of {name}; every pixel in [0, 1] is valid")
    for value in (1.0001, 2.0, -0.0001):
        bad = image.copy()
        bad.flat[10] = value
        status = answer(bad)
        assert 400 <= status < 500 and status not in (401, 403, 429), (
            f"the deployed server answered HTTP {status} to a test digit with one pixel of {value}; it must refuse "
            "it (422): pixels lie in [0, 1], so release the model with that input contract "
            "(input_range=(0.0, 1.0)), and sign it with the rest of the release")


@points(2)
def test_deploy_serves_only_the_evaluated_model(impl, ref, ref_trained, keypair, workdir):
    import keras

    changed = keras.models.clone_model(ref_trained.model_)  # someone trained on after evaluate()
    weights = ref_trained.model_.get_weights()
    weights[0] = weights[0] + 1e-3
    changed.set_weights(weights)
    system = isolated(impl, ref, "deploy", ref_trained)
    system.model_ = changed
    try:
        system.deploy(workdir("run"), *keypair)
    except NotImplementedError:
        raise
    except ValueError:
        return
    except Exception as e:
        raise AssertionError(f"deploy raised {type(e).__name__}: {e}; expected ValueError") from None
    finally:
        system.close()
    raise AssertionError("model_ was changed after evaluate(), and deploy served it: the card would describe "
                         "other weights. Compare the verified artifact's weights with the ones evaluated "
                         "(evaluated_weights_) and raise ValueError")


@points(3)
def test_card_holds_the_measurements(impl, ref, ref_live):
    from mlsec_lessons.governance.model_card import ModelCard

    system, card, error = run_isolated(impl, ref, "model_card", ref_live, ref_live.card_.artifact)
    reraise(error, "model_card(artifact)")
    assert isinstance(card, ModelCard), f"model_card returned {type(card).__name__}, not a ModelCard"
    evaluation = ref_live.evaluation_
    for field, label in [("accuracy", "clean accuracy"), ("robustness", "robust accuracy"),
                         ("privacy", "DP epsilon"), ("membership", "membership TPR")]:
        got, want = getattr(card, field), evaluation[field]
        if got == want:
            continue
        value = "nothing" if got is None else f"{got.value:.4g} ({got.method})"
        hint = " (that is the clean accuracy)" if got is not None and got.value == evaluation["accuracy"].value else ""
        raise AssertionError(f"the card's {label} is {value}{hint}; evaluate() measured {want.value:.4g} "
                             f"({want.method}). Fill the card only with the Measurements evaluate() made")
    card.to_markdown(strict=True)


@points(1)
def test_card_names_the_artifact_and_the_data(impl, ref, ref_live, digits):
    from mlsec_lessons.cache import fingerprint

    _, card, error = run_isolated(impl, ref, "model_card", ref_live, ref_live.card_.artifact)
    reraise(error, "model_card(artifact)")
    assert getattr(card, "artifact", None) == ref_live.card_.artifact, (
        "the card must name the verified artifact it was given (artifact=...)")
    assert card.training_data.get("fingerprint") == fingerprint(digits.x_train, digits.y_train), (
        "the card must record the training set's fingerprint (training_data=self.training_data_)")


def decoded(token, system):
    from mlsec_lessons.deployment import auth

    try:
        return jwt.decode(token, system.secret_, algorithms=["HS256"], audience=auth.AUDIENCE, issuer=auth.ISSUER,
                          options={"verify_exp": False})
    except jwt.PyJWTError as e:
        raise AssertionError(f"issue_token made a token the server cannot verify: {e}") from None


@points(2)
def test_tokens_are_short_lived_and_scoped(impl, ref, request, impl_deployed, digits):
    system, token, error = run_on(impl_deployed, "issue_token", "alice",
                                  hint=lambda: own_hint(impl, ref, request, "issue_token", "alice"))
    reraise(error, "issue_token('alice')")
    claims = decoded(token, system)
    assert "exp" in claims, "the token has no exp claim: a token that never expires is a password that never changes"
    lifetime = claims["exp"] - claims.get("iat", time.time())
    assert lifetime <= SETTINGS["token_ttl"] + 1, (
        f"the token is valid for {lifetime:.0f} s; the system issues tokens for token_ttl={SETTINGS['token_ttl']} s "
        "at most: a stolen token is useful only until it expires")
    assert claims.get("models") == [system.model_name], (
        f"the token's models claim is {claims.get('models')!r}; scope it to [{system.model_name!r}] (no claim means "
        "every model the server will ever serve)")
    r = system.client_.post(f"/v1/models/{system.model_name}/predict", headers={"Authorization": f"Bearer {token}"},
                            json={"instances": digits.x_test[:1].tolist()})
    assert r.status_code == 200, f"the server refused alice's token: HTTP {r.status_code} {r.text}"


@points(2)
def test_user_tokens_cannot_act_as_admin(impl, ref, request, impl_deployed):
    system, token, error = run_on(impl_deployed, "issue_token", "alice",
                                  hint=lambda: own_hint(impl, ref, request, "issue_token", "alice"))
    reraise(error, "issue_token('alice')")
    role = decoded(token, system).get("role")
    assert role == "user", (
        f"issue_token('alice') made a token with role {role!r}; a plain user gets role 'user' (least privilege)")
    r = system.client_.post(f"/v1/models/{system.model_name}/reload", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403, (
        f"alice's user token called the admin-only reload and got HTTP {r.status_code}, not 403")
    admin = decoded(system.issue_token("ops", role="admin"), system).get("role")
    assert admin == "admin", f"issue_token('ops', role='admin') made a token with role {admin!r}"


# --------------------------------------------------------------------------- 4. monitoring
@pytest.fixture(scope="module")
def impl_monitored(impl, ref, ref_trained, traffic, keypair, workdir):
    """(system, table, error, deployed): the student's monitor(traffic) on the reference's trained
    state, deployed by the student's own deploy (the server cannot travel between processes)."""
    system = isolated(impl, ref, "monitor", ref_trained)
    table, error, deployed = None, None, False
    try:
        system.deploy(workdir("monitor"), *keypair)
        deployed = True
        table = system.monitor(traffic)
    except Exception as e:
        error = e
    yield system, table, error, deployed
    try:
        system.close()
    except Exception:
        pass


def monitored(impl_monitored, impl, ref, request):
    """(system, table) of :func:`impl_monitored`, or the error that stopped it: monitor's own hint
    when deploy stopped at a stub (:func:`own_hint`), deploy's error otherwise."""
    system, table, error, deployed = impl_monitored
    if not deployed:
        if isinstance(error, NotImplementedError):
            raise own_hint(impl, ref, request, "monitor", []) or error
        reraise(error, "deploy(workdir, signing_key, public_key), which monitor(traffic) needs,")
    reraise(error, "monitor(traffic)")
    return system, table


@points(3)
def test_detector_threshold_set_on_clean_validation(impl_monitored, impl, ref, request, ref_live):
    system, _ = monitored(impl_monitored, impl, ref, request)
    detector = system.watch_.detector
    threshold = detector.threshold
    fpr = float(np.mean(detector.score_samples(system.x_validation_) >= threshold))
    want = SETTINGS["detector_fpr"]
    assert abs(fpr - want) <= 0.015, (
        f"the detector's threshold {threshold:.4g} flags {fpr:.1%} of the clean validation images; set it so that "
        f"it flags detector_fpr = {want:.0%} of them (the reference's threshold is "
        f"{ref_live.watch_.detector.threshold:.4g}). A threshold taken from the monitored traffic moves with the "
        "attack it should catch")


@points(2)
def test_monitoring_reports_the_attack(impl_monitored, impl, ref, request, ref_live):
    system, table = monitored(impl_monitored, impl, ref, request)
    got = table.set_index("client")["flagged"].groupby(level=0).mean()
    want = ref_live.monitoring_.set_index("client")["flagged"].groupby(level=0).mean()
    assert got["mallory"] >= 0.9 and got["alice"] <= 0.2, (
        f"the detector flagged {got['mallory']:.0%} of mallory's PGD inputs and {got['alice']:.0%} of alice's "
        f"honest ones; at the reference's operating point, {want['mallory']:.0%} and {want['alice']:.0%}")
    found = [a for a in getattr(system, "alerts_", []) if a.get("monitor") == DETECTOR and a.get("sub") == "mallory"]
    assert found, "no detector alert for mallory in the audit log (alerts_)"


# --------------------------------------------------------------------------- 5. compliance and audit
@points(3)
def test_coverage_counts_every_control(impl, ref, request, impl_live, ref_live, workdir):
    _, result, error = run_on(impl_live, "compliance_report", workdir("coverage"),
                              hint=lambda: own_hint(impl, ref, request, "compliance_report", workdir("stand-in")))
    reraise(error, "compliance_report(workdir)")
    got, want = result["coverage"], ref_live.compliance_["coverage"]
    rows = lambda report: {(r["component"], r["control"], r["status"]) for r in report.rows}  # noqa: E731
    missing = sorted(f"{c} / {n}" + (" (no check)" if s == "not implemented" else f" ({s})")
                     for c, n, s in rows(want) - rows(got))
    assert not missing and got.coverage() == want.coverage(), (
        f"Security Coverage is {got.coverage():.3f}, the reference's {want.coverage():.3f}; your inventory lacks "
        f"{missing}. A control with no check (check=None) still belongs on the list: leaving it off raises SC "
        "without protecting anything")


@points(1)
def test_checklist_points_at_existing_evidence(impl, ref, request, impl_live, workdir):
    _, result, error = run_on(impl_live, "compliance_report", workdir("checklist"),
                              hint=lambda: own_hint(impl, ref, request, "compliance_report", workdir("stand-in")))
    reraise(error, "compliance_report(workdir)")
    items = result["checklist"]
    items.check()
    rows = items.to_frame().set_index(["framework", "ref"])["status"]
    assert rows[("EU AI Act", "Art. 72")] == "partial" and rows[("GDPR", "Art. 17")] == "not covered", (
        "the checklist must say that monitoring is partial (Art. 72) and erasure not covered (Art. 17)")


# --------------------------------------------------------------------------- the whole system, your code only
@points(3)
def test_the_whole_system_runs_on_your_code(impl, ref, impl_trained, ref_live, digits, keypair, workdir):
    tmp_path = workdir("whole")
    from mlsec_lessons.deployment import artifacts
    from mlsec_lessons.governance.model_card import CARD_FILE, ModelCard

    system = impl_trained
    trained_model(system)
    system.evaluate(digits)
    try:
        system.deploy(tmp_path, *keypair)
        table = system.monitor(ref.demo_traffic(system.model_, digits, eps=SETTINGS["eps"], seed=0))
        result = system.compliance_report(tmp_path)
        card = ModelCard.load(system.release_ / CARD_FILE)
        signed = artifacts.verify_dir(system.release_, keypair[1])["files"]
        assert card.artifact is not None and signed.get(card.artifact.model_file) == card.artifact.model_sha256, (
            "the served card does not name the signed model file")
        assert card.robustness == system.evaluation_["robustness"], (
            "the served card's robust accuracy is not the measured one")
        flagged = table.set_index("client")["flagged"]
        assert flagged["mallory"] >= 0.9, f"your system's detector flagged {flagged['mallory']:.0%} of the attack"
        got = {(r["component"], r["control"]) for r in result["coverage"].gaps()}
        want = {(r["component"], r["control"]) for r in ref_live.compliance_["coverage"].gaps()}
        policy = {(r["component"], r["control"]) for report in (result["coverage"], ref_live.compliance_["coverage"])
                  for r in report.rows if r["component"] == "model"}   # the model's own numbers against the policy
        got, want = got - policy, want - policy
        assert got == want, (
            f"your system's coverage gaps are {sorted(got)}; the reference's are {sorted(want)}")
    finally:
        system.close()
