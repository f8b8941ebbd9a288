"""Model extraction: train a copy of a served model from its answers, and measure how close it is.

Four ways to choose the queries, from the most to the least data the thief needs:

* **natural data** from the problem domain, unlabeled (the thief has images, not labels): the API
  labels them, as in Copycat CNN (Correia-Silva et al., 2018) and ART's ``CopycatCNN``;
* **other natural data** (photo patches that are not digits), as in Copycat's non-problem-domain
  images and KnockoffNets (Orekondy et al., 2019), whose "random" strategy draws natural images
  from another data set at random;
* **uniform noise**, queries that need no data at all, as in the uniform random queries of
  Tramer et al. (2016);
* **synthesised queries**: Jacobian-based dataset augmentation (Papernot et al., 2017), which
  starts from a handful of images and adds ``x + lambda * sign(d logit_c / dx)`` for the label ``c``
  the API gave ``x``, doubling the set each round. This is the attack PRADA was built to catch.

The copy is judged by **fidelity**, its agreement with the victim's labels on held-out inputs the
thief never sent, and by its accuracy on the true labels.
"""
from dataclasses import dataclass

import numpy as np

from ..cache import cached_arrays, fingerprint
from ..errors import InvalidParameterError
from ..validation import check_choice, check_int, check_seed
from .client import QueryRefused
from .substitute import Substitute

USES = ("scores", "labels")
WEIGHT_NAMES = ("W1", "b1", "W2", "b2")  # a Substitute's params_, in order


@dataclass(frozen=True, eq=False)
class Extraction:
    """What a thief ends up with: its copy, the queries it sent and the answers it got."""

    substitute: Substitute
    x: np.ndarray
    answers: np.ndarray

    @property
    def queries(self):
        """How many queries the victim answered."""
        return len(self.answers)

    def to_frame(self):
        """One row: the queries answered, the classes seen in the answers, the copy's hidden units."""
        import pandas as pd

        return pd.DataFrame([{"queries": self.queries, "classes answered": int(len(np.unique(self.answers.argmax(1)))),
                              "hidden units": self.substitute.hidden}])


def photo_patches(n, size=8, seed=0):
    """``n`` grey ``size`` x ``size`` patches of scikit-learn's two sample photos: natural images, not digits.

    Each patch is a random square of 8-40 pixels, subsampled to ``size`` and scaled to [0, 1].
    """
    from sklearn.datasets import load_sample_images  # bundled with scikit-learn: nothing is downloaded

    rng = np.random.default_rng(check_seed(seed))
    photos = [img.mean(axis=2) / 255.0 for img in load_sample_images().images]
    out = np.empty((n, size, size), dtype=np.float32)
    for i in range(n):
        photo, side = photos[rng.integers(len(photos))], int(rng.integers(size, 5 * size + 1))
        r, c = rng.integers(0, photo.shape[0] - side), rng.integers(0, photo.shape[1] - side)
        pick = (np.arange(size) * side / size).astype(int)
        out[i] = photo[r + pick][:, c + pick]
    return out[..., None]


def uniform_noise(n, shape=(8, 8, 1), seed=0):
    """``n`` inputs with every pixel uniform in [0, 1]: queries that need no data at all.

    These are the uniform random queries of Tramer et al. (2016). They are not KnockoffNets'
    queries, which are natural images (see :func:`photo_patches`).
    """
    return np.random.default_rng(check_seed(seed)).random((n, *shape), dtype=np.float32)


def query(victim, x):
    """Ask ``victim.predict`` about ``x``; if the server stops answering, keep what it answered.

    Returns ``(x_answered, answers)``.
    """
    try:
        answers = victim.predict(x)
    except QueryRefused as refused:
        answers = refused.answers
    return np.asarray(x)[:len(answers)], answers


def steal(x, answers, use="scores", seed=0, cache=True, **substitute_params):
    """Fit a :class:`Substitute` to the answers: the probabilities as given (``"scores"``) or their argmax (``"labels"``).

    ``"labels"`` is what an adaptive thief does against an output defense that perturbs the scores
    but keeps the top class (reverse sigmoid): it throws the scores away.

    With ``cache=True`` the fitted weights are kept in the course cache through
    :func:`mlsec_lessons.cache.cached_arrays` (``.npz``, no pickle), keyed by the substitute's parameters,
    a fingerprint of the queries and the answers, and the library versions, so a re-run that got the
    same answers loads the copy instead of fitting it again.
    """
    check_choice(use, "use", USES)
    answers = np.asarray(answers, dtype=np.float64)
    if answers.ndim != 2:
        raise InvalidParameterError(f"answers must be one row of scores per query, got shape {answers.shape}")
    target = answers if use == "scores" else np.eye(answers.shape[1])[answers.argmax(axis=1)]
    substitute = Substitute(seed=seed, **substitute_params)
    x = np.asarray(x, dtype=np.float64)
    config = dict(params=vars(substitute), data=fingerprint(x, target))

    def compute():
        substitute.fit(x, target)
        return dict(zip(WEIGHT_NAMES, substitute.params_))

    weights, _ = cached_arrays("substitute", config, compute, cache=cache, folder="substitutes")
    if not hasattr(substitute, "params_"):  # loaded: set what fit would have set
        substitute.params_ = tuple(weights[k] for k in WEIGHT_NAMES)
        substitute.n_features_in_, substitute.n_classes_ = weights["W1"].shape[0], weights["W2"].shape[1]
    return substitute


def copycat(victim, x_pool, budget, use="scores", seed=0):
    """Send the first ``budget`` inputs of ``x_pool`` to the victim and train a copy on the answers.

    Examples
    --------
    >>> stolen = copycat(HttpVictim(server.url, token), d.x_train, budget=500)      # doctest: +SKIP
    >>> fidelity(stolen.substitute, d.x_test, victim_labels)                        # doctest: +SKIP
    0.97
    """
    check_int(budget, "budget", min_value=1, max_value=len(x_pool))  # at most the pool's size
    x, answers = query(victim, np.asarray(x_pool)[:budget])
    return Extraction(steal(x, answers, use, seed), x, answers)


def jacobian_augmentation(victim, x_seed, rounds=5, lam=0.1, tau=3, clip=(0.0, 1.0), seed=0):
    """Papernot et al.'s substitute training: label a small seed set, then double it each round.

    Round ``r`` adds ``clip(x + lambda_r * sign(d logit_c(x) / dx))`` for every ``x`` so far, where
    ``c`` is the label the victim gave ``x`` and the substitute is the one trained so far;
    ``lambda_r = lam`` flips sign every ``tau`` rounds, so the new points do not drift off in one
    direction. ``len(x_seed) * 2 ** rounds`` queries in all.
    """
    x = np.asarray(x_seed, dtype=np.float32)
    x, answers = query(victim, x)
    substitute = steal(x, answers, "labels", seed)
    for r in range(rounds):
        step = lam * (-1.0 if (r // tau) % 2 else 1.0)
        labels = answers.argmax(axis=1)
        new = np.clip(x + step * np.sign(substitute.logit_gradient(x, labels)), *clip).astype(np.float32)
        new, new_answers = query(victim, new)
        x, answers = np.concatenate([x, new]), np.concatenate([answers, new_answers])
        substitute = steal(x, answers, "labels", seed)
        if len(new) < len(labels):  # refused part-way: the thief stops with what it has
            break
    return Extraction(substitute, x, answers)


def fidelity(substitute, x, victim_labels):
    """Share of ``x`` on which the copy gives the victim's label."""
    return float(np.mean(substitute.predict(x) == np.asarray(victim_labels)))


def extraction_curve(x, answers, budgets, x_eval, victim_labels, y_eval, use="scores", seed=0):
    """Fidelity and accuracy of copies trained on the first ``b`` answers, for each budget ``b``.

    One pass of queries serves every budget: a thief with budget ``b`` would have received exactly
    the first ``b`` of these answers.

    Returns
    -------
    list of dict
        ``{"budget", "fidelity", "accuracy", "use"}`` per budget.
    """
    rows = []
    for b in budgets:
        if not 1 <= b <= len(answers):
            raise InvalidParameterError(f"budget {b!r} is outside [1, {len(answers)}], the number of answers")
        sub = steal(x[:b], answers[:b], use, seed)
        rows.append({"budget": int(b), "use": use, "fidelity": fidelity(sub, x_eval, victim_labels),
                     "accuracy": fidelity(sub, x_eval, y_eval)})
    return rows


def plot_extraction_curves(curves, ax=None, title=None, victim_accuracy=None):
    """Fidelity (solid) and accuracy (dashed) against the query budget, one colour per attack.

    ``curves``: ``{label: list of rows from extraction_curve}``. The budget axis is logarithmic.
    """
    from ..plotting import axes_or_new, finish_axes

    if not hasattr(curves, "items") or len(curves) == 0:
        raise InvalidParameterError("curves must be a non-empty mapping {label: rows from extraction_curve}")
    ax = axes_or_new(ax)
    for (label, rows), marker in zip(curves.items(), "osd^v<>"):
        budget = [r["budget"] for r in rows]
        line, = ax.plot(budget, [r["fidelity"] for r in rows], marker=marker, ms=4, label=label)
        ax.plot(budget, [r["accuracy"] for r in rows], ls="--", lw=1, color=line.get_color())
    if victim_accuracy is not None:
        ax.axhline(victim_accuracy, color="grey", ls=":", lw=1, label="victim's accuracy")
    ax.set_xscale("log")
    ax.set_xlabel("queries to the API")
    ax.set_ylabel("fidelity (solid), accuracy (dashed)")
    ax.set_ylim(0, 1.02)
    return finish_axes(ax, title, loc="lower right")
