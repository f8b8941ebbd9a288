"""Model skewing (OWASP ML08): poisoning a model through its own feedback loop.

A deployed classifier retrains every round on the traffic it served. Honest users mostly
accept its predictions (an accepted prediction becomes a training label) and correct some of
the wrong ones; an attacker sends inputs of a ``source`` class and "corrects" every one of them
to ``target``. Each retraining moves the model a little towards the attacker's labels, the
model then mislabels honest ``source`` inputs itself, and those mistakes go back into the
training data: the loop keeps the skew after the attacker stops.

A **gate** is the usual defense: before a retrained model replaces the deployed one, its
per-class recall on a small trusted set must not fall more than ``tolerance`` below a
reference, else the round's feedback is discarded. The reference matters: against the
previous model, an attacker who moves a little less than ``tolerance`` per round passes
every gate; against a fixed baseline, the drift adds up and is caught.
"""
import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from ..errors import InvalidParameterError
from ..validation import as_generator, check_fraction, check_int, check_labels
from ._common import check_class

GATES = (None, "previous", "baseline")


def _fit(x, y, previous=None):
    model = LogisticRegression(C=1.0, tol=1e-3, max_iter=500, warm_start=previous is not None)
    if previous is not None:  # start from the deployed weights: same answer, fewer iterations
        model.coef_, model.intercept_, model.classes_ = (previous.coef_.copy(), previous.intercept_.copy(),
                                                         previous.classes_)
    return model.fit(x, y)


def _recalls(model, x, y, n_classes):
    pred = model.predict(x)
    return np.array([np.mean(pred[y == c] == c) if np.any(y == c) else np.nan for c in range(n_classes)])


@threadpool_limits.wrap(limits=1)  # small fits gain nothing from threads, and they stall on a busy CPU
def simulate_feedback_loop(x_pool, y_pool, x_trusted, y_trusted, x_eval, y_eval, *, source, target, rounds=8,
                           batch=80, initial=250, attack_per_round=20, attack_rounds=None, correction_rate=0.3,
                           gate=None, tolerance=0.05, seed=0):
    """Simulate ``rounds`` rounds of serve, collect feedback, retrain; return one record per round.

    Parameters
    ----------
    x_pool, y_pool : arrays (n, d) and (n,)
        The stream of honest traffic (flattened features and true labels); the first
        ``initial`` rows train the first model, then ``batch`` new rows arrive each round.
    x_trusted, y_trusted : arrays
        A small trusted, correctly labelled set the gate checks against.
    x_eval, y_eval : arrays
        Held-out data on which each round's deployed model is measured.
    source, target : int
        The attacker's inputs are ``source`` images labelled ``target``.
    rounds, batch, initial : int
    attack_per_round : int, default=20
        Poisoned feedback items per round while the attack runs.
    attack_rounds : int or None
        The attacker stops after this many rounds (``None``: attacks every round).
    correction_rate : float in [0, 1], default=0.3
        Share of wrong predictions on honest traffic that users correct; the other predictions
        are accepted as labels, right or wrong.
    gate : {None, "previous", "baseline"}
        Compare the retrained model with the deployed one or with the first model.
    tolerance : float in [0, 1]
        Largest allowed drop of any class's recall on the trusted set.
    seed : int

    Returns
    -------
    list of dict
        One per round (round 0 is the first model): ``round``, ``attacking``, ``accepted``,
        ``source_recall`` and ``other_accuracy`` of the deployed model on the eval set,
        ``source_to_target`` (share of eval ``source`` inputs it calls ``target``).

    Examples
    --------
    >>> from mlsec_lessons.data import load_digits
    >>> d = load_digits(); x = d.x_train.reshape(len(d.x_train), -1)
    >>> log = simulate_feedback_loop(x[200:], d.y_train[200:], x[:200], d.y_train[:200],
    ...                              d.x_test.reshape(len(d.x_test), -1), d.y_test, source=7, target=1,
    ...                              rounds=2)                                          # doctest: +SKIP
    """
    if gate not in GATES:
        raise InvalidParameterError(f"gate must be one of {GATES}, got {gate!r}")
    x_pool, x_trusted, x_eval = (np.asarray(a, np.float64) for a in (x_pool, x_trusted, x_eval))
    for name, xa in (("x_pool", x_pool), ("x_trusted", x_trusted), ("x_eval", x_eval)):
        if xa.ndim != 2:
            raise InvalidParameterError(f"{name} must be 2-D (n, features); flatten images first, got shape {xa.shape}")
    y_pool, y_trusted, y_eval = (check_labels(y, name=name) for y, name in
                                 ((y_pool, "y_pool"), (y_trusted, "y_trusted"), (y_eval, "y_eval")))
    for (xa, ya, name) in ((x_pool, y_pool, "pool"), (x_trusted, y_trusted, "trusted"), (x_eval, y_eval, "eval")):
        if len(xa) != len(ya):
            raise InvalidParameterError(f"shape mismatch: x_{name} has {len(xa)} rows but y_{name} has {len(ya)}")
    n_classes = int(max(y_pool.max(), y_trusted.max(), y_eval.max())) + 1
    source, target = check_class("source", source, n_classes), check_class("target", target, n_classes)
    if source == target:
        raise InvalidParameterError(f"source and target must differ, both are {source}")
    rounds, batch, initial = (check_int(v, name, min_value=1) for v, name in
                              ((rounds, "rounds"), (batch, "batch"), (initial, "initial")))
    attack_per_round = check_int(attack_per_round, "attack_per_round", min_value=0)
    if initial + rounds * batch > len(x_pool):
        raise InvalidParameterError(f"initial + rounds * batch = {initial + rounds * batch} exceeds the {len(x_pool)} pool rows")
    correction_rate = check_fraction(correction_rate, "correction_rate")
    tolerance = check_fraction(tolerance, "tolerance")
    rng = as_generator(seed)
    attack_rounds = rounds if attack_rounds is None else attack_rounds
    attacker_images = x_pool[y_pool == source]

    x_seen, y_seen = x_pool[:initial], y_pool[:initial]
    deployed = baseline = _fit(x_seen, y_seen)
    reference_recall = _recalls(baseline, x_trusted, y_trusted, n_classes)
    log = [_record(0, False, True, deployed, x_eval, y_eval, source, target)]
    for r in range(1, rounds + 1):
        lo = initial + (r - 1) * batch
        x_new, y_true = x_pool[lo:lo + batch], y_pool[lo:lo + batch]
        # honest feedback: the deployed model's prediction, unless the user bothers to correct it
        y_fb = deployed.predict(x_new)
        corrected = (y_fb != y_true) & (rng.random(len(y_fb)) < correction_rate)
        y_fb[corrected] = y_true[corrected]
        attacking = r <= attack_rounds and attack_per_round > 0
        if attacking:
            picks = attacker_images[rng.integers(0, len(attacker_images), attack_per_round)]
            x_new, y_fb = np.vstack([x_new, picks]), np.concatenate([y_fb, np.full(attack_per_round, target)])
        candidate = _fit(np.vstack([x_seen, x_new]), np.concatenate([y_seen, y_fb]), previous=deployed)
        accepted = True
        if gate is not None:
            reference = reference_recall if gate == "baseline" else _recalls(deployed, x_trusted, y_trusted, n_classes)
            accepted = bool(np.all(_recalls(candidate, x_trusted, y_trusted, n_classes) >= reference - tolerance))
        if accepted:
            deployed = candidate
            x_seen, y_seen = np.vstack([x_seen, x_new]), np.concatenate([y_seen, y_fb])
        log.append(_record(r, attacking, accepted, deployed, x_eval, y_eval, source, target))
    return log


def _record(r, attacking, accepted, model, x_eval, y_eval, source, target):
    pred = model.predict(x_eval)
    is_source = y_eval == source
    return {"round": r, "attacking": attacking, "accepted": accepted,
            "source_recall": float(np.mean(pred[is_source] == source)),
            "source_to_target": float(np.mean(pred[is_source] == target)),
            "other_accuracy": float(np.mean(pred[~is_source] == y_eval[~is_source]))}
