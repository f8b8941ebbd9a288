"""The standard robustness evaluation: AutoAttack (Croce and Hein, 2020) through ART.

A defense is only as good as the strongest attack tried on it. AutoAttack runs a fixed,
parameter-free ensemble (APGD on cross-entropy, APGD on the DLR loss, ...) and keeps, per
sample, the first attack that succeeds; robust accuracy is the share none of them broke.
The result states eps, norm and the subset it was measured on, because a robust accuracy
without them is not a claim anyone can check.
"""
import dataclasses

import numpy as np

from ..attacks import art_estimator, check_norm, one_hot
from ..errors import InvalidParameterError
from ..models import predict_labels
from ..reproducibility import quiet, seeded_numpy_global
from ..validation import as_generator, check_int, check_real, check_xy


@dataclasses.dataclass(frozen=True, eq=False)
class AutoAttackResult:
    """A robust accuracy with the setting that makes it checkable: eps, norm, subset, attacks, iterations."""

    robust_accuracy: float
    clean_accuracy: float
    eps: float
    norm: str             # "inf" or "2"
    n: int                # subset size
    attacks: tuple
    steps: int            # APGD iterations per restart
    restarts: int
    indices: np.ndarray   # the subset of the test set, sorted
    x_adv: np.ndarray     # the subset, attacked

    def to_frame(self):
        """One row: the accuracies and the setting (the arrays left out)."""
        import pandas as pd

        row = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("indices", "x_adv")}
        row["attacks"] = " + ".join(self.attacks)
        return pd.DataFrame([row])


def fixed_subset(n_total, n, seed=0):
    """Indices of a fixed random subset of size ``n`` (sorted), the same for every model evaluated."""
    n = check_int(n, "n", min_value=1)
    if n > n_total:
        raise InvalidParameterError(f"n={n} is larger than the {n_total} samples available")
    return np.sort(as_generator(seed).permutation(n_total)[:n])


def _run_autoattack(aa, x, y_onehot):
    """``aa.generate``; ART 1.20 imports the optional ``multiprocess`` package there even when it
    runs sequentially, so without it run the same sequential loop with ART's own ``run_attack``."""
    try:
        import multiprocess  # noqa: F401
    except ImportError:
        from art.attacks.evasion.auto_attack import run_attack

        x_adv = x.astype(np.float32)
        robust = np.argmax(aa.estimator_orig.predict(x_adv), axis=1) == np.argmax(y_onehot, axis=1)
        for attack in aa.attacks:  # each attack only on the samples no earlier attack broke
            if robust.any():
                x_adv, robust = run_attack(x_adv, y_onehot, robust, attack, aa.estimator, aa.norm, aa.eps)
        return x_adv
    return aa.generate(x, y=y_onehot).astype(np.float32)


def autoattack(model, x, y, eps, *, norm=np.inf, n=100, seed=0, steps=20, restarts=1, bounds=(0.0, 1.0)):
    """Robust accuracy under ART's ``AutoAttack`` with APGD-CE and APGD-DLR, on a fixed subset.

    The full AutoAttack adds FAB and Square; the two APGD attacks are the ones that do the
    work against models without gradient masking, and they keep this to seconds on a CPU.

    Parameters
    ----------
    model : keras.Model or ART classifier
        Outputs logits.
    x, y : arrays
        The test set; the subset is drawn from it with ``seed``.
    eps : float
    norm : {np.inf, 2}, default=np.inf
    n : int, default=100
        Subset size.
    seed : int, default=0
        Seed of the subset (and of ART's random starts).
    steps : int, default=20
        APGD iterations per restart (ART's ``max_iter``).
    restarts : int, default=1
    bounds : (lo, hi)
        Two numbers: the valid input range.

    Returns
    -------
    AutoAttackResult

    Examples
    --------
    >>> r = autoattack(robust_model, d.x_test, d.y_test, eps=0.1, n=100)     # doctest: +SKIP
    >>> r.robust_accuracy, r.eps, r.norm, r.n       # lesson 03     # doctest: +SKIP
    (0.81, 0.1, 'inf', 100)
    """
    quiet()  # ART warns on import that PyTorch is absent
    from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent

    eps, norm = check_real(eps, "eps", min_value=0), check_norm(norm)
    steps, restarts = check_int(steps, "steps", min_value=1), check_int(restarts, "restarts", min_value=1)
    x, y = check_xy(x, y, bounds=bounds)
    idx = fixed_subset(len(x), n, seed)
    xs, ys = x[idx], y[idx]
    clf = art_estimator(model, xs.shape[1:], bounds)
    ensemble = [AutoProjectedGradientDescent(clf, norm=norm, eps=eps, eps_step=2 * eps, max_iter=steps,
                                             nb_random_init=restarts, batch_size=len(xs), loss_type=loss,
                                             verbose=False)
                for loss in ("cross_entropy", "difference_logits_ratio")]
    with seeded_numpy_global(seed):  # ART draws APGD's random starts from NumPy's global generator
        x_adv = _run_autoattack(AutoAttack(clf, norm=norm, eps=eps, eps_step=2 * eps, attacks=ensemble,
                                           batch_size=len(xs)), xs, one_hot(ys, clf.nb_classes))
    predict = (lambda v: predict_labels(model, v)) if not hasattr(model, "loss_gradient") else (
        lambda v: np.argmax(model.predict(v), axis=1))
    return AutoAttackResult(robust_accuracy=float(np.mean(predict(x_adv) == ys)),
                            clean_accuracy=float(np.mean(predict(xs) == ys)), eps=eps,
                            norm="inf" if norm == np.inf else "2", n=int(n), attacks=("APGD-CE", "APGD-DLR"),
                            steps=steps, restarts=restarts, indices=idx, x_adv=x_adv)
