"""Federated averaging on Flower: the ``ClientApp``, the ``ServerApp`` and a quiet simulation runner.

Each client holds one part of digits' training set (:mod:`.partition`) and trains the course's
``small_cnn`` on it for a few local epochs; the server averages the returned weights, weighted by
each client's number of records (FedAvg, McMahan et al. 2017), and scores the global model on the
held-out test set after every round.

The settings of a run travel with each message as a ``ConfigRecord`` (``scheme``, ``alpha``,
``local-epochs``...), so one ``ServerApp`` can run several experiments (IID, non-IID, with
client-level DP, under attack, with a robust aggregator) against the same clients in one
simulation, and Ray starts once (:mod:`.apps` holds the ``ClientApp``, the ``ServerApp`` and the
runner). An experiment may start from an earlier one's final model (``start_from``), and its
train config may name malicious clients (:mod:`.attacks`); :mod:`.robust` holds the aggregators.
"""
import dataclasses
import time

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping
from flwr.supercore.privacy_accounting import NeighboringRelation, PrivacyConfig, SamplingMethod
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from .. import reproducibility
from ..errors import InvalidParameterError
from ..validation import check_choice, check_fraction, check_int, check_real
from . import attacks, robust
from .partition import partition

NUM_CLASSES = 10


# --------------------------------------------------------------------------- settings
@dataclasses.dataclass(frozen=True)
class Experiment:
    """One federated training run.

    Parameters
    ----------
    name : str
    scheme : {"iid", "dirichlet"}
        How digits' training set is split among the clients.
    alpha : float
        Dirichlet concentration for ``scheme="dirichlet"`` (smaller is more skewed).
    rounds : int
    local_epochs : int
    learning_rate : float
        Of each client's plain SGD (no momentum, so no optimizer state crosses clients).
    batch_size : int
    noise_multiplier : float or None
        Client-level DP (Flower's ``DifferentialPrivacyServerSideFixedClipping``): each client's
        update is clipped to ``clipping_norm`` and Gaussian noise of std
        ``noise_multiplier * clipping_norm / clients`` is added to the average. None: no DP.
        The server clips here, so it sees every raw update; :class:`.secagg.SecureDPRun` runs the
        same mechanism with client-side clipping through SecAgg+.
    clipping_norm : float
    delta : float
        The delta at which the DP run's epsilon is reported.
    seed : int
        Seeds the split, the initial weights and each client's shuffling.
    attack : attacks.Attack or None
        Malicious clients (by partition id) and what they send; None: every client is honest.
    aggregator : str
        :func:`.robust.make_aggregator`'s ``name``: ``"fedavg"``, ``"trimmed-mean"``, ``"median"``,
        ``"krum"``, ``"multi-krum"`` or ``"norm-bound"`` (which bounds at ``clipping_norm``).
    num_malicious, trim
        Krum's ``f`` and the trimmed mean's ``beta`` (:func:`.robust.make_aggregator`).
    start_from : str or None
        Start from the final model of the earlier job of this name in the same simulation
        (None: from :func:`initial_weights`).
    keep_replies : bool
        Keep every reply the server received (``History.received``).
    """

    name: str
    scheme: str = "iid"
    alpha: float = 0.3
    rounds: int = 5
    local_epochs: int = 2
    learning_rate: float = 0.1
    batch_size: int = 16
    noise_multiplier: float | None = None
    clipping_norm: float = 1.0
    delta: float = 1e-3
    seed: int = 0
    attack: attacks.Attack | None = None
    aggregator: str = "fedavg"
    num_malicious: int = 1
    trim: float = 0.1
    start_from: str | None = None
    keep_replies: bool = False

    def run(self, grid, context, num_clients, evaluate=None, start=None):
        """Run this experiment from inside a ``ServerApp``; see :func:`run_experiment`."""
        return run_experiment(grid, self, num_clients, evaluate, start)

    def __post_init__(self):
        check_choice(self.scheme, "scheme", ("iid", "dirichlet"))
        for field in ("rounds", "local_epochs", "batch_size"):
            check_int(getattr(self, field), field, min_value=1)
        positive = dict(min_value=0, include_boundaries="neither")
        check_real(self.alpha, "alpha", **positive)
        check_real(self.learning_rate, "learning_rate", **positive)
        if self.noise_multiplier is not None:  # None: no DP
            check_real(self.noise_multiplier, "noise_multiplier", **positive)
        check_real(self.clipping_norm, "clipping_norm", **positive)
        check_fraction(self.delta, "delta", include_boundaries="neither")
        check_int(self.seed, "seed", min_value=0)
        check_choice(self.aggregator, "aggregator", robust.AGGREGATORS)
        check_int(self.num_malicious, "num_malicious", min_value=0)
        check_real(self.trim, "trim", min_value=0, max_value=0.5, include_boundaries="left")
        if self.attack is not None and not isinstance(self.attack, attacks.Attack):
            raise InvalidParameterError(f"attack must be an attacks.Attack or None, got {self.attack!r}")
        if self.noise_multiplier is not None and self.aggregator != "fedavg":
            raise InvalidParameterError("client-level DP runs with aggregator='fedavg' only")

    def client_config(self):
        """What the server sends each client with the weights."""
        return ConfigRecord({"scheme": self.scheme, "alpha": float(self.alpha), "seed": int(self.seed),
                             "local-epochs": self.local_epochs, "lr": float(self.learning_rate),
                             "batch-size": self.batch_size})

    def train_config(self, num_clients):
        """:meth:`client_config`, plus the attackers' orders when this run has an attack."""
        config = self.client_config()
        if self.attack is not None:
            config = ConfigRecord({**config, **self.attack.config(num_clients)})
        return config


@dataclasses.dataclass(frozen=True)
class History:
    """What one experiment measured: the global model's test accuracy after each round.

    ``accuracy[0]`` is the initial model's; ``epsilon`` is set for DP runs (Flower's accountant),
    ``weights`` holds the final global weights, and ``seconds`` the wall time of the run. Runs
    with a backdoor attack also record ``attack_success`` after each round (the share of triggered
    test images of the other classes put in the target class), and runs with ``keep_replies``
    every reply the server received (``received[round]``, a list of :class:`.robust.ClientReply`).
    """

    experiment: Experiment
    accuracy: list = dataclasses.field(default_factory=list)
    train_loss: list = dataclasses.field(default_factory=list)
    epsilon: float | None = None
    weights: list | None = None
    seconds: float = 0.0
    attack_success: list = dataclasses.field(default_factory=list)
    received: dict | None = None

    @property
    def final_accuracy(self):
        return self.accuracy[-1]

    def to_frame(self):
        """One row per round (0: the initial model): test accuracy and the clients' last training loss."""
        import pandas as pd

        loss = [None] + list(self.train_loss)
        frame = pd.DataFrame({"accuracy": self.accuracy,
                              "train loss": (loss + [None] * len(self.accuracy))[:len(self.accuracy)]})
        if self.attack_success:
            frame["attack success"] = self.attack_success
        frame.index.name = "round"
        return frame


# --------------------------------------------------------------------------- data and model
def client_data(partition_id, num_partitions, scheme, alpha, seed):
    """Client ``partition_id``'s share of digits' training set, as ``(x, y)``."""
    from ..data import load_digits

    data = load_digits()
    parts = partition(data.y_train, num_partitions, scheme, alpha, seed)
    idx = parts[int(partition_id)]
    return data.x_train[idx], data.y_train[idx]


_TRAINERS = {}  # one model and its compiled step per process: a new Keras model would retrace it


def _trainer():
    """This process's model, its SGD optimizer and a compiled step that trains it on one batch."""
    import keras
    import tensorflow as tf

    from ..models import small_cnn

    if "cnn" not in _TRAINERS:
        model, optimizer = small_cnn(), keras.optimizers.SGD()
        cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        # One trace for every batch size: a client's last batch is smaller than the others.
        @tf.function(input_signature=[tf.TensorSpec([None, *model.input_shape[1:]], tf.float32),
                                      tf.TensorSpec([None], tf.int64)])
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = cross_entropy(y, model(x, training=True))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
            return loss

        _TRAINERS["cnn"] = model, optimizer, step
    return _TRAINERS["cnn"]


def initial_weights(seed=0):
    """The global model's starting weights: ``small_cnn`` built under ``seed``."""

    from ..models import small_cnn

    with reproducibility.seeded(seed):
        return small_cnn().get_weights()


def local_update(weights, x, y, epochs, learning_rate, batch_size, seed):
    """Train a copy of the global model on one client's records; return its weights and loss.

    Plain minibatch SGD, reshuffled each epoch by ``seed``; the loss is the last epoch's mean.
    (A loop over a compiled step: Keras' ``fit`` costs about 0.15 s a call, ten times the training.)
    """
    model, optimizer, step = _trainer()
    model.set_weights(weights)
    optimizer.learning_rate.assign(learning_rate)
    x, y, rng = np.asarray(x, np.float32), np.asarray(y, np.int64), np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        batches = [order[i:i + batch_size] for i in range(0, len(x), batch_size)]
        losses = [float(step(x[b], y[b])) for b in batches]
    loss = float(np.average(losses, weights=[len(b) for b in batches]))
    return model.get_weights(), loss


# --------------------------------------------------------------------------- the client
def client_update(weights, config, partition_id, num_partitions):
    """One client's part of a round: its honest update, or an attacker's (:func:`.attacks.malicious_update`)
    if ``config`` names it as one in this round.

    Returns ``(weights, num_examples, loss)``, as :func:`honest_update`.
    """
    if attacks.is_attacking(config, partition_id):
        return attacks.malicious_update(weights, config, partition_id, num_partitions)
    return honest_update(weights, config, partition_id, num_partitions)


def honest_update(weights, config, partition_id, num_partitions):
    """An honest client's part of a round: train ``weights`` on its records, as ``config`` says.

    Returns
    -------
    weights : list of ndarray
    num_examples : int
    loss : float
        The training loss of the last local epoch.
    """
    x, y = client_data(partition_id, num_partitions, config["scheme"], config["alpha"], config["seed"])
    seed = client_seed(config["seed"], config.get("server-round", 0), partition_id)
    weights, loss = local_update(weights, x, y, int(config["local-epochs"]), float(config["lr"]),
                                 int(config["batch-size"]), seed)
    return weights, len(x), loss


def client_train(msg: Message, context: Context) -> Message:
    """The ``ClientApp``'s train handler: train the received weights on this node's partition."""
    weights, n, loss = client_update(msg.content["arrays"].to_numpy_ndarrays(), msg.content["config"],
                                     context.node_config["partition-id"], context.node_config["num-partitions"])
    metrics = MetricRecord({"train-loss": loss, "num-examples": n, "equal-weight": 1,
                            "partition-id": int(context.node_config["partition-id"])})
    return Message(RecordDict({"arrays": ArrayRecord(weights), "metrics": metrics}), reply_to=msg)


def client_seed(seed, server_round, partition_id):
    """A different shuffle per client and round, the same on every rerun."""
    return int(seed) * 100_003 + int(server_round) * 1009 + int(partition_id)


# --------------------------------------------------------------------------- the server
def make_test_set_evaluator(target=None):
    """A Flower ``evaluate_fn``: the global model's accuracy on digits' test set.

    With a backdoor ``target`` it also reports ``"attack-success"``: the share of the test images
    of the other classes, stamped with the trigger, that the model puts in ``target``.
    """
    from ..data import load_digits
    from ..models import small_cnn

    data = load_digits()
    model = small_cnn()
    if target is not None:
        from ..poisoning import add_trigger

        triggered = add_trigger(data.x_test[data.y_test != target])

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model.set_weights(arrays.to_numpy_ndarrays())
        logits = model(data.x_test, training=False).numpy()  # one batch: predict() costs 50 ms more a call
        metrics = {"accuracy": float(np.mean(logits.argmax(axis=1) == data.y_test))}
        if target is not None:
            metrics["attack-success"] = float(np.mean(model(triggered, training=False).numpy().argmax(axis=1) == target))
        return MetricRecord(metrics)

    return evaluate


def client_level_accountant(experiment, num_clients):
    """Flower's RDP accountant for client-level DP: one client is the unit, every client in every round.

    Every client takes part in every round, so there is no amplification by sampling to claim
    (``NO_AMPLIFICATION``). The server-side (:func:`make_strategy`) and the SecAgg+ run
    (:class:`.secagg.SecureDPRun`) both account with it.
    """
    return RdpAccountant(PrivacyConfig(
        target_delta=experiment.delta, population_size=num_clients,
        neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
        sampling_method=SamplingMethod.NO_AMPLIFICATION))


def make_strategy(experiment, num_clients):
    """The experiment's aggregator over every client (:func:`.robust.make_aggregator`), or FedAvg
    wrapped in server-side clipping and noise for a DP run."""
    if experiment.noise_multiplier is None:
        return robust.make_aggregator(experiment.aggregator, num_clients, num_malicious=experiment.num_malicious,
                                      trim=experiment.trim, clipping_norm=experiment.clipping_norm), None
    # client-level DP needs every client to weigh the same: one client is the unit of privacy
    base = robust.RoundSeedFedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=num_clients,
                                  min_train_nodes=num_clients, weighted_by_key="equal-weight")
    accountant = client_level_accountant(experiment, num_clients)
    strategy = DifferentialPrivacyServerSideFixedClipping(
        base, noise_multiplier=experiment.noise_multiplier, clipping_norm=experiment.clipping_norm,
        num_sampled_clients=num_clients, accountant=accountant)
    return strategy, accountant


def run_experiment(grid, experiment, num_clients, evaluate=None, start=None):
    """Run one :class:`Experiment` on ``grid`` (inside a ``ServerApp``); return its :class:`History`.

    ``start``: the global weights to begin from (default: :func:`initial_weights`).
    """
    began = time.perf_counter()
    attack = experiment.attack
    if attack is not None and attack.kind == "backdoor":
        evaluate = make_test_set_evaluator(target=attack.target)
    evaluate = evaluate or make_test_set_evaluator()
    strategy, accountant = make_strategy(experiment, num_clients)
    start = initial_weights(experiment.seed) if start is None else start
    with reproducibility.seeded_numpy_global(experiment.seed):  # Flower's DP noise comes from np.random
        result = strategy.start(grid=grid, initial_arrays=ArrayRecord([np.array(w) for w in start]),
                                num_rounds=experiment.rounds, train_config=experiment.train_config(num_clients),
                                evaluate_fn=evaluate)
    metrics = [m for _, m in sorted(result.evaluate_metrics_serverapp.items())]
    received = getattr(strategy, "received", {})  # a CourseStrategy's; a DP wrapper keeps none
    return History(experiment, accuracy=[m["accuracy"] for m in metrics],
                   train_loss=[m["train-loss"] for _, m in sorted(result.train_metrics_clientapp.items())],
                   epsilon=None if accountant is None else float(accountant.get_epsilon(experiment.delta)),
                   weights=result.arrays.to_numpy_ndarrays(), seconds=time.perf_counter() - began,
                   attack_success=[m["attack-success"] for m in metrics if "attack-success" in m],
                   received=dict(received) if experiment.keep_replies else None)


