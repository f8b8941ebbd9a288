# Generated from solutions/ex2_privacy_preserving_system.py by `make stubs`: do not edit by hand in the
# course repository (change the solution, then run `make stubs`). Students: this is your
# copy; replace each `raise NotImplementedError(...)` with your code, then run the grader.
"""Exercise 2: a privacy-preserving system that is private, measured and audited.

The source's ``PrivacyPreservingSystem`` is three empty methods, and its ``PrivacyPreservingML``
adds Laplace noise to the *features*, which is not differential privacy (no sensitivity, the
labels unprotected), then "simulates" membership inference. Here every part is real:

* ``train_private_model(data)``: DP-SGD, written by you. Each step samples a batch by Poisson
  sampling, computes one gradient per example, clips each to ``l2_norm_clip``, adds Gaussian noise
  of std ``noise_multiplier * l2_norm_clip`` to their *sum*, and divides by the expected batch
  size. The privacy spent is what the RDP accountant of ``dp_accounting`` says for that
  sampling rate, noise and number of steps.
* ``evaluate_privacy(model, members, non_members)``: the loss-threshold membership-inference
  attack, reported as AUC and TPR at a low FPR (1%).
* ``audit(evaluation)``: an empirical lower bound on epsilon from the attack's results, with
  Clopper-Pearson confidence intervals, to set beside the accountant's epsilon.

The model is a tiny numpy MLP (``TinyMLP``, given), so that a whole DP-SGD run takes about a
second. Write the functions in the order they appear; the class uses them all.

Part 2, after lesson 06, adds federated learning to the same class:

* ``federated_average(client_updates, weights)``: FedAvg, the mean of the clients' updates
  weighted by their number of records.
* ``trimmed_mean(client_updates, beta)``: a robust aggregator, the coordinate-wise trimmed mean
  (Yin et al., 2018): per coordinate, the mean of the clients' values without the
  ``floor(beta * n)`` lowest and highest, so that a few malicious clients cannot drag it far.
* ``secure_aggregate(client_vectors, dropouts=...)``: the sum of the clients' vectors, computed
  by a server that sees none of them: pairwise masking with Shamir-shared secrets (Bonawitz et
  al., 2017), which survives clients that drop out. The cryptographic building blocks (X25519 key
  agreement, a ChaCha20 PRG, Shamir sharing) are given in ``mlsec_lessons.federated.masking``;
  you write the protocol.

Try your code in ``exercises/ex2_privacy_preserving_system.ipynb``, then grade it with
``mlsec grade ex2`` (or the notebook's last cell).
"""
import dataclasses

import dp_accounting
import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

from mlsec_lessons.federated import masking


def flatten(x):
    """One row of features per record: images of shape (n, 8, 8, 1) become (n, 64)."""
    x = np.asarray(x, dtype=float)
    return x.reshape(len(x), int(np.prod(x.shape[1:])))  # not -1: an empty Poisson batch has 0 rows


class TinyMLP:
    """A one-hidden-layer ReLU network with a softmax output, in numpy.

    Its parameters are ``params = [W1, b1, W2, b2]``; DP-SGD works on all of them as one flat
    vector of ``n_params`` numbers (``step`` splits an update back into the four arrays).

    Examples
    --------
    >>> model = TinyMLP(n_features=4, n_classes=3, hidden=5, rng=np.random.default_rng(0))
    >>> model.n_params, model.losses(np.ones((2, 4)), [0, 2]).shape
    (43, (2,))
    """

    def __init__(self, n_features, n_classes, hidden=64, rng=None):
        rng = np.random.default_rng(0) if rng is None else rng
        # He initialisation for the ReLU layer, Glorot-like for the output layer
        self.params = [rng.normal(0.0, np.sqrt(2.0 / n_features), (n_features, hidden)), np.zeros(hidden),
                       rng.normal(0.0, np.sqrt(1.0 / hidden), (hidden, n_classes)), np.zeros(n_classes)]

    @property
    def n_params(self):
        return sum(p.size for p in self.params)

    def forward(self, x):
        """The hidden pre-activations ``a``, the hidden activations ``h`` and the logits ``z``."""
        W1, b1, W2, b2 = self.params
        a = flatten(x) @ W1 + b1
        h = np.maximum(a, 0.0)
        return a, h, h @ W2 + b2

    def log_probs(self, x):
        z = self.forward(x)[2]
        z = z - z.max(axis=1, keepdims=True)  # the softmax does not change, exp cannot overflow
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def losses(self, x, y):
        """The cross-entropy loss of each record: ``-log p(y_i | x_i)``, shape (n,)."""
        y = np.asarray(y)
        return -self.log_probs(x)[np.arange(len(y)), y]

    def predict(self, x):
        return self.forward(x)[2].argmax(axis=1)

    def accuracy(self, x, y):
        return float(np.mean(self.predict(x) == np.asarray(y)))

    def step(self, update, learning_rate):
        """Gradient descent: ``params -= learning_rate * update``, ``update`` a flat vector."""
        start = 0
        for p in self.params:
            p -= learning_rate * update[start:start + p.size].reshape(p.shape)
            start += p.size


# --------------------------------------------------------------------------- DP-SGD
def per_example_gradients(model, x, y):
    """The gradient of each record's loss with respect to all the parameters, one row per record.

    Backpropagation for the whole batch at once, without summing over the records: for the
    logits ``z = h W2 + b2`` the loss's gradient is ``delta2 = softmax(z) - onehot(y)``; back
    through ``W2`` and the ReLU it is ``delta1 = (delta2 W2^T) * [a > 0]``. Each weight's
    gradient is then an outer product per record, ``x_i delta1_i^T`` and ``h_i delta2_i^T``.

    Parameters
    ----------
    model : TinyMLP
    x : array of shape (n, ...)
    y : array of int, shape (n,)

    Returns
    -------
    ndarray of shape (n, model.n_params)
        Row ``i`` is the gradient of ``model.losses(x, y)[i]``, flattened in the order
        ``W1, b1, W2, b2`` (row-major, as ``reshape(-1)`` does).

    Examples
    --------
    >>> model = TinyMLP(4, 3, hidden=5)
    >>> per_example_gradients(model, np.ones((2, 4)), [0, 2]).shape
    (2, 43)
    """
    raise NotImplementedError("Backpropagate without summing over the records: each record's output error, pushed back through the second layer and the ReLU, gives its weight gradients as outer products. Pitfall: flatten them in the model's parameter order (layer by layer, weights before biases), or the rows will not line up.")


def clip_gradients(grads, l2_norm_clip):
    """Scale each row of ``grads`` down to L2 norm at most ``l2_norm_clip``; shorter rows stay.

    Clipping bounds how far any one record can move the sum of the gradients: that bound is
    the sensitivity the noise is calibrated to.

    Raises
    ------
    ValueError
        If ``l2_norm_clip`` is not positive.

    Examples
    --------
    >>> clip_gradients(np.array([[3.0, 4.0], [0.3, 0.4]]), 1.0)
    array([[0.6, 0.8],
           [0.3, 0.4]])
    """
    raise NotImplementedError("Shrink each record's gradient to the clip norm if it is longer, and leave shorter ones as they are. Pitfall: clip each row on its own, not the batch as a whole, and do not divide by zero for a zero gradient; refuse a clip norm that is not positive.")


def privatize_gradients(grads, l2_norm_clip, noise_multiplier, expected_batch_size, rng):
    """The DP-SGD update from per-example gradients: clip, sum, add noise, divide.

    ``(sum_i clip(g_i) + N(0, (noise_multiplier * l2_norm_clip)^2 I)) / expected_batch_size``.
    The noise goes on the *sum*, once: the sum is what one record changes by at most
    ``l2_norm_clip``. Under Poisson sampling the number of rows varies from step to step; divide
    by the *expected* batch size, a constant, so that the batch's size reveals nothing.

    Parameters
    ----------
    grads : array of shape (batch, n_params)
        One gradient per record of the batch; the batch may be empty.
    l2_norm_clip : float > 0
    noise_multiplier : float >= 0
        Noise std in units of the clip norm; 0 means no noise (and no privacy).
    expected_batch_size : float > 0
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n_params,)

    Raises
    ------
    ValueError
        For a clip norm or expected batch size that is not positive, or a negative noise multiplier.

    Examples
    --------
    >>> grads = np.array([[3.0, 4.0], [0.0, 1.0]])
    >>> privatize_gradients(grads, 1.0, 0.0, 2, np.random.default_rng(0))  # no noise: the clipped mean
    array([0.3, 0.9])
    """
    raise NotImplementedError("Clip each record's gradient, add them up, add Gaussian noise once to the sum, and divide by the expected batch size. Pitfall: noise on each record, or a division by the actual batch size, breaks the calibration and leaks the batch's size; the noise's scale is the multiplier times the clip norm.")


def poisson_sample(n, sample_rate, rng):
    """Poisson sampling: each of the ``n`` records joins the batch independently with
    probability ``sample_rate``. Returns the sorted indices of the batch (its size varies).

    The accountant's amplification by sampling assumes exactly this; a shuffled pass over
    fixed-size batches is another mechanism.

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer or ``sample_rate`` is not in (0, 1].

    Examples
    --------
    >>> batch = poisson_sample(1000, 0.1, np.random.default_rng(0))
    >>> 70 < len(batch) < 130
    True
    """
    raise NotImplementedError("Each record joins the batch on its own with the given probability, so the batch's size varies from step to step. Pitfall: a shuffled pass over fixed-size batches is another mechanism than the one the accountant assumes; refuse a non-positive record count and a rate outside (0, 1].")


def epsilon_spent(noise_multiplier, sample_rate, steps, delta):
    """The epsilon, at ``delta``, of ``steps`` Poisson-sampled Gaussian steps, by RDP accounting.

    One DP-SGD step is a Gaussian mechanism with noise ``noise_multiplier`` (in units of the
    sensitivity) applied to a Poisson sample at rate ``sample_rate``; training composes it
    ``steps`` times. ``dp_accounting``'s ``RdpAccountant`` does the arithmetic.

    Raises
    ------
    ValueError
        For a negative noise multiplier, a rate outside (0, 1], a negative number of steps, or
        ``delta`` outside (0, 1).

    Examples
    --------
    >>> round(epsilon_spent(1.1, 256 / 60000, 60 * 60000 // 256, 1e-5), 2)  # TF Privacy's MNIST row
    2.6
    """
    raise NotImplementedError("One DP-SGD step is a Gaussian mechanism applied to a Poisson sample; compose it over all the steps and ask the RDP accountant for epsilon at delta. Pitfall: let the accountant do the arithmetic (composing by hand, or forgetting the sampling, gets it wrong), and refuse impossible arguments.")


# --------------------------------------------------------------------------- auditing
def clopper_pearson(k, n, alpha=0.05):
    """The exact (Clopper-Pearson) two-sided ``1 - alpha`` confidence interval of a rate
    observed as ``k`` successes in ``n`` trials, as ``(low, high)``.

    ``low`` is the ``alpha / 2`` quantile of Beta(k, n - k + 1) (0 when k = 0) and ``high``
    the ``1 - alpha / 2`` quantile of Beta(k + 1, n - k) (1 when k = n).

    Raises
    ------
    ValueError
        Unless ``0 <= k <= n``, ``n >= 1`` and ``0 < alpha < 1``.

    Examples
    --------
    >>> low, high = clopper_pearson(0, 100)
    >>> low, round(high, 4)  # no success in 100 trials: the rate may still be up to 3.6%
    (0.0, 0.0362)
    """
    raise NotImplementedError("The exact interval takes each end from a quantile of a Beta distribution, and pins the low end to zero with no successes and the high end to one when all trials succeed. Pitfall: the interval is two-sided, so each end gets half of alpha.")


def epsilon_lower_bound(tp, fn, fp, tn, delta=1e-5, alpha=0.05):
    """The epsilon that a membership attack's counts prove, with confidence ``1 - alpha``.

    Any attack on an (eps, delta)-DP mechanism has ``TPR <= e^eps FPR + delta``, and likewise
    ``TNR <= e^eps FNR + delta``. So ``eps >= log((TPR - delta) / FPR)``; to make that a bound
    and not a guess, use the *lowest* TPR and the *highest* FPR the counts allow (the
    Clopper-Pearson interval ends), not the observed rates.

    Parameters
    ----------
    tp, fn : int
        Members the attack flagged, and those it missed.
    fp, tn : int
        Non-members it flagged, and those it cleared.
    delta : float, default=1e-5
    alpha : float, default=0.05

    Returns
    -------
    float
        The larger of the two bounds, and never below 0.

    Examples
    --------
    >>> round(epsilon_lower_bound(tp=90, fn=10, fp=5, tn=95), 3)
    1.988
    """
    raise NotImplementedError("Turn the DP inequality between the attack's true and false positive rates around, in both directions, and keep the larger epsilon. Pitfall: use the pessimistic ends of the confidence intervals (lowest TPR, highest FPR), not the observed rates, and never go below zero.")


def add_canaries(data, n_canaries=400, seed=0):
    """Audit canaries: ``n_canaries`` training records given a wrong label, a random half of
    them kept in training (members) and the other half taken out (non-members).

    A mislabeled record is one a model can only fit by memorising it, the worst case an audit
    looks for; ordinary records say much less about membership.

    Returns
    -------
    (data, canaries)
        ``data`` with the canaries' labels changed and the non-member canaries removed from
        the training set; ``canaries`` a dict with ``x``, ``y`` (the wrong labels) and
        ``is_member``.
    """
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(data.x_train), n_canaries, replace=False)
    wrong = (data.y_train[pick] + rng.integers(1, data.n_classes, n_canaries)) % data.n_classes  # never the true one
    is_member = rng.permutation(n_canaries) < n_canaries // 2
    y_train = data.y_train.copy()
    y_train[pick] = wrong
    keep = np.ones(len(y_train), dtype=bool)
    keep[pick[~is_member]] = False
    train = dataclasses.replace(data, x_train=data.x_train[keep], y_train=y_train[keep],
                                info={**data.info, "canaries": n_canaries})
    return train, {"x": data.x_train[pick], "y": wrong, "is_member": is_member}


# --------------------------------------------------------------------------- the system
class PrivacyPreservingSystem:
    """Train with DP-SGD, attack the result, and audit the privacy it claims.

    Parameters
    ----------
    l2_norm_clip : float, default=1.0
        Each example's gradient is clipped to this L2 norm.
    noise_multiplier : float, default=1.5
        Noise std on the summed gradient, in units of ``l2_norm_clip``; 0 trains without privacy.
    batch_size : int, default=64
        The *expected* batch size; each step samples a record with rate ``batch_size / n``.
    epochs : int, default=15
        Training runs ``epochs * n // batch_size`` steps.
    learning_rate : float, default=1.0
    delta : float, default=1e-5
        The delta at which epsilon is reported; keep it well below ``1 / n``.
    hidden : int, default=64
        Width of the model's hidden layer.
    seed : int, default=0
    threshold : int, default=3
        The Shamir threshold of ``secure_aggregate``: at least ``threshold`` clients must survive
        to recover the sum, and any ``threshold`` clients together could unmask an input.

    Attributes
    ----------
    model_ : TinyMLP
    sample_rate_ : float
    steps_ : int
    epsilon_ : float
        The privacy spent, from the RDP accountant.
    masked_vectors_, public_keys_, revealed_shares_ : dict
        What the server received in the last ``secure_aggregate``: the survivors' masked vectors,
        every client's public key, and the shares revealed to unmask the sum.

    Examples
    --------
    >>> from mlsec_lessons.data import load_digits
    >>> system = PrivacyPreservingSystem()
    >>> model = system.train_private_model(load_digits())  # doctest: +SKIP
    >>> round(system.epsilon_, 2)  # doctest: +SKIP
    3.21
    """

    def __init__(self, l2_norm_clip=1.0, noise_multiplier=1.5, batch_size=64, epochs=15, learning_rate=1.0,
                 delta=1e-5, hidden=64, seed=0, threshold=3):
        self.l2_norm_clip = l2_norm_clip
        self.noise_multiplier = noise_multiplier
        self.batch_size = batch_size
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.delta = delta
        self.hidden = hidden
        self.seed = seed
        self.threshold = threshold

    def _check(self, n):
        """Refuse hyperparameters that make no sense for ``n`` training records."""
        if not self.l2_norm_clip > 0:
            raise ValueError(f"l2_norm_clip must be positive, got {self.l2_norm_clip!r}")
        if not self.noise_multiplier >= 0:
            raise ValueError(f"noise_multiplier must be >= 0, got {self.noise_multiplier!r}")
        if not (isinstance(self.batch_size, (int, np.integer)) and 1 <= self.batch_size <= n):
            raise ValueError(f"batch_size must be an integer from 1 to the {n} training records, "
                             f"got {self.batch_size!r}")
        if not (isinstance(self.epochs, (int, np.integer)) and self.epochs >= 1):
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta!r}")

    def train_private_model(self, data):
        """DP-SGD on ``data.x_train``, ``data.y_train``; returns the model.

        Sets ``model_``, ``sample_rate_ = batch_size / n``, ``steps_ = epochs * n // batch_size``
        and ``epsilon_``, the privacy those steps spend at ``delta``.
        """
        x, y = flatten(data.x_train), np.asarray(data.y_train)
        n = len(x)
        self._check(n)
        rng = np.random.default_rng(self.seed)
        model = TinyMLP(x.shape[1], data.n_classes, self.hidden, rng)
        raise NotImplementedError("Run the DP-SGD loop with the pieces you wrote (sample a batch, per-record gradients, privatise, update), then keep what the accountant needs and the epsilon it reports. Pitfall: the accountant must be told the sampling rate and the number of steps that actually ran.")

    def evaluate_privacy(self, model, members, non_members, max_fpr=0.01):
        """The loss-threshold membership-inference attack on ``model``.

        The attack scores each record by minus its loss: a model fits the records it was trained
        on better, so a high score says "member".

        Parameters
        ----------
        model : TinyMLP
        members, non_members : tuple (x, y)
            Records the model was trained on, and records it was not.
        max_fpr : float, default=0.01

        Returns
        -------
        dict
            ``auc``; ``tpr_at_low_fpr``, the highest TPR at an FPR of at most ``max_fpr``;
            ``max_fpr``; and the raw ``scores`` and ``is_member`` (members first), for ``audit``.
        """
        raise NotImplementedError("Score each record by how well the model fits it, then measure how well that separates members from non-members: the AUC, and the best TPR at a low FPR. Pitfall: a high score must mean member, and the AUC alone hides the few records an attacker is sure of.")

    def audit(self, evaluation, alpha=0.05):
        """An empirical lower bound on epsilon from ``evaluate_privacy``'s results.

        The records are split in two halves at random. The attack's threshold (flag a record
        when its score is at least the threshold) is the one with the best bound on the first
        half; the bound reported is the one on the second half. A threshold tuned on the same
        records it is scored on would make the interval too optimistic.

        Counting each record as an independent trial is valid when each trial is a separate
        training run; for many records in one run it is an approximation (Steinke, Nasr and
        Jagielski, 2023, make one-run audits rigorous).

        Returns
        -------
        dict
            ``epsilon_lower_bound``, ``threshold``, ``counts`` (tp, fn, fp, tn on the second
            half) and ``epsilon_accountant`` (``epsilon_`` if the system has trained, else None).
        """
        scores, is_member = np.asarray(evaluation["scores"]), np.asarray(evaluation["is_member"], dtype=bool)
        order = np.random.default_rng(self.seed).permutation(len(scores))
        choose, count = order[::2], order[1::2]
        raise NotImplementedError("Choose the attack's threshold on one half of the records, count its hits and misses on the other half, and turn those counts into a lower bound on epsilon. Pitfall: a threshold tuned on the same records it is scored on makes the bound too optimistic.")

    # ----------------------------------------------------------------------- part 2: federated learning
    def federated_average(self, client_updates, weights):
        """FedAvg's aggregation: ``sum_k w_k u_k / sum_k w_k`` over the clients' updates ``u_k``.

        The weights are usually the clients' numbers of training records (McMahan et al., 2017):
        a plain mean would let a client with 10 records pull the model as hard as one with 10000.

        Parameters
        ----------
        client_updates : sequence of arrays, all of one shape
        weights : sequence of float >= 0, one per client, with a positive sum

        Returns
        -------
        ndarray, the shape of one update

        Raises
        ------
        ValueError
            For updates of different shapes, a number of weights other than the number of
            updates, a negative weight, or weights whose sum is not positive.

        Examples
        --------
        >>> PrivacyPreservingSystem().federated_average([[0.0, 2.0], [4.0, 6.0]], weights=[3, 1])
        array([1., 3.])
        """
        raise NotImplementedError("Average the clients' updates, each weighted by its client's share of the total weight (usually its number of records). Pitfall: a plain mean lets a tiny client pull as hard as a big one; refuse mismatched shapes, a wrong number of weights, negative weights and weights with no positive sum.")

    def trimmed_mean(self, client_updates, beta):
        """The coordinate-wise trimmed mean of the clients' updates (Yin et al., 2018).

        For each coordinate, sort the clients' values, drop the ``k = floor(beta * n)`` lowest and
        the ``k`` highest of the ``n`` values, and average the ``n - 2k`` that remain. A client
        that scales its update up (or sends any outlier) lands at one end of every coordinate it
        pushes, where it is dropped: as long as at most ``k`` clients are malicious, every value
        that is averaged lies between two honest values. FedAvg has no such bound: one client
        moves the mean as far as it likes. This is Flower's ``FedTrimmedAvg`` (and
        ``scipy.stats.trim_mean`` along the clients' axis), unweighted.

        Parameters
        ----------
        client_updates : sequence of arrays, all of one shape, at least one
        beta : float, 0 <= beta < 0.5
            The fraction of the clients trimmed at *each* end of every coordinate; ``0`` gives the
            plain mean. Below 0.5, at least one value of each coordinate remains.

        Returns
        -------
        ndarray, the shape of one update

        Raises
        ------
        ValueError
            For no updates, updates of different shapes, or ``beta`` outside ``[0, 0.5)``.

        Examples
        --------
        >>> PrivacyPreservingSystem().trimmed_mean([[1.0, 0.0], [2.0, 9.0], [3.0, 1.0], [400.0, 2.0]], beta=0.25)
        array([2.5, 1.5])
        """
        raise NotImplementedError("Sort each coordinate over the clients on its own, drop the same number of values at both ends, and average what is left. Pitfall: that number is beta times the clients, rounded down, not to the nearest; beta is cut at each end, so it stays below one half; refuse no updates and mismatched shapes.")

    def secure_aggregate(self, client_vectors, dropouts=()):
        """The sum of the clients' vectors mod ``R = masking.MODULUS``, by a server that never
        sees one of them (pairwise masking, Bonawitz et al., 2017).

        1. Each client ``u`` makes an X25519 key pair ``(sk_u, pk_u)`` (``masking.generate_keypair``)
           and a 32-byte self-mask seed ``b_u``, and splits both secrets into Shamir shares with
           ``threshold`` (``masking.share_secret``): share ``j`` goes to client ``j``.
        2. Each client sends ``y_u = x_u + PRG(b_u) + sum_{v > u} PRG(s_uv) - sum_{v < u} PRG(s_uv)``
           mod ``R``, with ``s_uv = masking.agree(sk_u, pk_v)`` and ``PRG = masking.prg``. The
           pairwise masks cancel in the sum.
        3. The clients in ``dropouts`` masked their vectors, which never reach the server. The
           server adds up the survivors' ``y_u``; from the survivors' shares it rebuilds
           (``masking.recover_secret``) each survivor's ``b_u`` and removes ``PRG(b_u)``, and each
           dropped client's secret key, with which it recomputes the pairwise masks that client
           left in the survivors' vectors and removes them too.

        All the randomness comes from ``np.random.default_rng(self.seed)``, so that a round is
        reproducible (a real deployment uses the OS's randomness).

        Parameters
        ----------
        client_vectors : sequence of integer arrays, all of one shape, values in ``[0, R)``
            Quantise float updates first (``masking.quantize``).
        dropouts : sequence of int, default=()
            The clients whose masked vectors never arrive.

        Returns
        -------
        ndarray of int64
            The sum of the survivors' vectors mod ``R``, exactly.

        Sets what the server received from the clients: ``public_keys_``, ``{client: pk_u}`` for
        every client; ``masked_vectors_``, ``{client: y_u}`` for the survivors; and
        ``revealed_shares_``, ``{survivor w: ({u: w's share of b_u}, {v: w's share of sk_v})}``,
        the shares each survivor revealed in the unmasking round, of the survivors' self-mask
        seeds and of the dropped clients' secret keys (never both of one client).

        Raises
        ------
        ValueError
            For vectors of different shapes, a ``threshold`` larger than the number of clients (or
            below 2), or fewer than ``threshold`` survivors.

        Examples
        --------
        >>> system = PrivacyPreservingSystem(threshold=2)
        >>> system.secure_aggregate([[1, 2], [10, 20], [100, 200]], dropouts=[1])
        array([101, 202])
        """
        raise NotImplementedError("Pairwise masks that one client adds and the other subtracts cancel in the sum, a self-mask hides each vector further, and secret shares let the server remove what survivors and dropped clients leave. Pitfall: never rebuild both secrets of one client; refuse too few survivors.")
