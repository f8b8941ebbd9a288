"""Case 2, healthcare: what accuracy the breast-cancer data supports, and what DP costs and buys.

The source claims "99.5% diagnostic accuracy" for a hospital model trained with federated
learning and differential privacy. Two measurements answer it:

* **Realistic accuracy.** Repeated stratified 10-fold cross-validation of a standardised
  logistic regression on all 569 patients: the mean, the spread across folds, and the recall
  on malignant tumours (a missed cancer costs more than a false alarm).
* **Privacy, measured from both sides.** Logistic regressions trained with DP-SGD (lesson 04)
  at a few epsilons, beside the same recipe without noise. For each: the accuracy on
  patients it did not see, and the exposure to membership inference, as LiRA's TPR at low
  FPR (lesson 05). LiRA's shadow models are trained with the *same* private recipe: an
  attack that knows the defense. Features are scaled with public ranges (lesson 04), so no
  statistic of a patient sets the sensitivity.

An (eps, delta)-DP training caps every membership test at
``TPR <= min(e^eps * FPR + delta, 1 - e^-eps * (1 - delta - FPR))``, whatever the attack.
"""
import dataclasses

import numpy as np
from sklearn import datasets as skdatasets
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import make_scorer, recall_score
from sklearn.model_selection import RepeatedStratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..errors import InvalidParameterError
from ..privacy import accounting
from ..privacy.dp_models import scale_public
from ..privacy_attacks import lira, membership
from ..validation import check_int, check_real, check_seed

MALIGNANT = 0  # scikit-learn's label for a malignant tumour (1 is benign)


def realistic_accuracy(n_splits=10, n_repeats=3, seed=0):
    """Accuracy and malignant recall of a standardised logistic regression, fold by fold.

    The scaler is fitted inside each fold, on its training part only.

    Returns
    -------
    dict
        ``"accuracy"`` and ``"malignant recall"``: arrays with one value per fold
        (``n_splits * n_repeats``); ``"test size"``: patients per fold.

    Examples
    --------
    >>> r = realistic_accuracy(n_splits=5, n_repeats=1)
    >>> r["accuracy"].shape, bool(0.9 < r["accuracy"].mean() < 1.0)
    ((5,), True)
    """
    check_int(n_splits, "n_splits", min_value=2)
    check_int(n_repeats, "n_repeats", min_value=1)
    raw = skdatasets.load_breast_cancer()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    folds = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=check_seed(seed))
    scores = cross_validate(model, raw.data, raw.target, cv=folds, scoring={
        "accuracy": "accuracy", "malignant recall": make_scorer(recall_score, pos_label=MALIGNANT)})
    return {"accuracy": scores["test_accuracy"], "malignant recall": scores["test_malignant recall"],
            "test size": len(raw.target) // n_splits}


def dp_tpr_bound(epsilon, fpr, delta=0.0):
    """The largest TPR any membership test can reach at false-positive rate ``fpr`` against (eps, delta)-DP.

    Examples
    --------
    >>> round(dp_tpr_bound(1.0, 0.01), 4)
    0.0272
    >>> dp_tpr_bound(np.inf, 0.01)
    1.0
    """
    check_real(epsilon, "epsilon", min_value=0, allow_inf=True)
    check_real(delta, "delta", min_value=0, max_value=1, include_boundaries="left")
    fpr = np.asarray(fpr, dtype=float)
    if np.any(~(fpr >= 0)) or np.any(fpr > 1):
        raise InvalidParameterError(f"fpr must lie in [0, 1], got {fpr!r}")
    if np.isinf(epsilon):  # no DP: nothing caps the attack
        bound = np.ones_like(fpr)
    else:
        bound = np.clip(np.minimum(np.exp(epsilon) * fpr + delta, 1 - np.exp(-epsilon) * (1 - delta - fpr)), 0, 1)
    return float(bound) if bound.ndim == 0 else bound


def public_pool():
    """All 569 patients, scaled with the public ranges of :mod:`mlsec_lessons.privacy.dp_models`."""
    raw = skdatasets.load_breast_cancer()
    return scale_public(raw.data, list(raw.feature_names)).astype(np.float32), raw.target.astype(np.int64)


def dp_sgd_shadows(x, y, noise_multiplier, *, n_models=17, l2_norm_clip=1.0, batch_size=64, epochs=20,
                   learning_rate=0.5, momentum=0.9, seed=0, cache=True):
    """DP-SGD logistic regressions as shadow models: lesson 05's ``train_shadow_models`` with a ``DPSGDClassifier``.

    Model ``k`` is trained with lesson 04's DP-SGD loop on the half ``in_mask[k]`` of the records, with seed
    ``seed + k``. The models share one compiled step (:meth:`~mlsec_lessons.privacy_attacks.shadows.DPSGDClassifier.shadow_logits`),
    and their logits are cached.

    Returns
    -------
    ShadowSet
        Logits of every model on every record, and which records each model trained on.
    """
    from ..privacy_attacks.shadows import DPSGDClassifier, train_shadow_models

    recipe = DPSGDClassifier(hidden=(), l2_norm_clip=l2_norm_clip, noise_multiplier=float(noise_multiplier),
                             batch_size=batch_size, epochs=epochs, learning_rate=learning_rate, momentum=momentum)
    return train_shadow_models(recipe, x, y, n_models, seed=check_int(seed, "seed", min_value=0), cache=cache)


def privacy_sweep(epsilons=(1.0, 2.0, 4.0), *, n_models=17, epochs=20, batch_size=64, learning_rate=0.5,
                  delta=1e-5, seed=0, cache=True):
    """DP-SGD logistic regressions at each epsilon (and without noise): accuracy and LiRA exposure.

    Each of ``n_models`` models is trained on a random half of the 569 patients
    (:func:`dp_sgd_shadows`), so every model has as many held-out patients as members. Each
    model in turn is LiRA's target and the others its shadows (``lira.leave_one_out``), which
    pools ``n_models * 569`` membership trials.

    Returns
    -------
    list of dict
        One per setting, no noise first: ``epsilon`` (inf without noise), ``noise multiplier``,
        ``accuracy`` and ``malignant recall`` on held-out patients (mean over models),
        ``train accuracy``, and LiRA's ``auc``, ``tpr@0.1%``, ``tpr@1%``, with the DP caps
        ``bound tpr@0.1%`` and ``bound tpr@1%``.

    Examples
    --------
    >>> rows = privacy_sweep((1.0,))                                     # doctest: +SKIP
    >>> rows[1]["epsilon"], rows[1]["tpr@1%"] <= rows[1]["bound tpr@1%"] # doctest: +SKIP
    (1.0, True)
    """
    for e in epsilons:
        check_real(e, "epsilons", min_value=0, include_boundaries="neither")
    from ..privacy import dp_sgd  # TensorFlow only when the sweep runs
    x, y = public_pool()
    n_train = len(y) // 2
    sample_rate, steps = dp_sgd.schedule(n_train, batch_size, epochs)
    rows = []
    for eps in (np.inf, *epsilons):
        sigma = 0.0 if np.isinf(eps) else accounting.noise_multiplier_for(eps, sample_rate, steps, delta)
        shadows = dp_sgd_shadows(x, y, sigma, n_models=n_models, batch_size=batch_size, epochs=epochs,
                                 learning_rate=learning_rate, seed=seed, cache=cache)
        report = membership.attack_report(*lira.leave_one_out(shadows, "online"))
        correct = shadows.logits.argmax(-1) == y    # (n_models, n_patients)
        held_out = ~shadows.in_mask
        rows.append({"epsilon": float(eps), "noise multiplier": sigma,
                     "accuracy": float(correct[held_out].mean()),
                     "malignant recall": float(correct[held_out & (y == MALIGNANT)].mean()),
                     "train accuracy": shadows.accuracy_by_membership()["members"],
                     "auc": report["auc"], "tpr@0.1%": report["tpr@0.1%"], "tpr@1%": report["tpr@1%"],
                     "bound tpr@0.1%": float(dp_tpr_bound(eps, 0.001, delta)),
                     "bound tpr@1%": float(dp_tpr_bound(eps, 0.01, delta)),
                     "trials": report["n members"] + report["n non-members"]})
    return rows


@dataclasses.dataclass(frozen=True, eq=False)
class HealthcareCase:
    """What :func:`healthcare_case` measured."""

    cv: dict        # realistic_accuracy(...)
    privacy: list   # privacy_sweep(...)
    config: dict

    def to_frame(self):
        """The privacy sweep as a DataFrame, one row per epsilon."""
        import pandas as pd

        return pd.DataFrame(self.privacy).set_index("epsilon")


def healthcare_case(*, epsilons=(1.0, 2.0, 4.0), n_models=17, seed=0, cache=True):
    """Cross-validated accuracy of a plain model, then the DP-SGD sweep with LiRA (both cached or fast).

    Examples
    --------
    >>> case = healthcare_case()                                     # doctest: +SKIP
    >>> case.to_frame()[["accuracy", "tpr@1%", "bound tpr@1%"]]      # doctest: +SKIP
    """
    return HealthcareCase(realistic_accuracy(seed=seed),
                          privacy_sweep(epsilons, n_models=n_models, seed=seed, cache=cache),
                          dict(epsilons=list(epsilons), n_models=n_models, seed=seed))
