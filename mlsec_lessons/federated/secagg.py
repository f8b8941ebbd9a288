"""Secure aggregation with Flower's SecAgg+ (Bell et al. 2020), next to plain FedAvg.

Flower runs SecAgg+ as a *workflow* on the server (``SecAggPlusWorkflow``, inside the legacy
``DefaultWorkflow``) and as a *mod* on each client (``secaggplus_mod``), which wraps the client's
training: it quantises the weighted update, adds the pairwise and self masks, and answers the
server's requests for key shares when a neighbour drops out. The server only ever adds masked
vectors; the masks cancel in the sum.

To show that, both rounds here go through :class:`RecordingGrid`, which keeps every reply the
server receives: in the plain round the clients' weights, in the SecAgg+ round only masked
integers. :mod:`.masking` builds the same protocol from scratch in numpy.

:class:`SecureDPRun` adds client-level DP on top: each client clips its own update (Flower's
``fixedclipping_mod``) *before* SecAgg+ masks it, and the server, which sees only the sum, adds the
Gaussian noise (``DifferentialPrivacyClientSideFixedClipping``). The server is trusted to add that
noise, and each client to clip; the server never sees one client's update.
"""
import dataclasses
import time

import numpy as np
from flwr.app import Message
from flwr.app.message_type import MessageType
from flwr.client.mod import fixedclipping_mod, secaggplus_mod
from flwr.common import Code, FitRes, Status, bytes_to_ndarray, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy import DifferentialPrivacyClientSideFixedClipping
from flwr.server.strategy import FedAvg as LegacyFedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_PARAMS_RECORD
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM
from flwr.supercore.privacy_accounting import GaussianPrivacyEvent

from .. import reproducibility
from ..errors import InvalidParameterError, RunError
from . import fedavg


class RecordingGrid:
    """A Flower ``Grid`` that keeps a copy of everything the server receives.

    It passes every call through to the real grid; ``received`` lists, per
    ``send_and_receive``, the ``(node_id, arrays, configs)`` of each reply.
    """

    def __init__(self, grid):
        self._grid = grid
        self.received = []

    def __getattr__(self, name):
        return getattr(self._grid, name)

    def send_and_receive(self, messages, *, timeout=None):
        replies = list(self._grid.send_and_receive(messages, timeout=timeout))
        self.received.append([(m.metadata.src_node_id,
                               {k: r.to_numpy_ndarrays() for k, r in m.content.array_records.items()},
                               {k: dict(r) for k, r in m.content.config_records.items()})
                              for m in replies if not m.has_error()])
        return replies


# --------------------------------------------------------------------------- client side
def _legacy_train(msg, context):
    """The client's training in the legacy FitIns/FitRes format that ``secaggplus_mod`` speaks.

    With ``equal-weight`` in the config (client-level DP) the client reports one example, so every
    client weighs the same in SecAgg+'s weighted sum.
    """
    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    weights, n, _ = fedavg.client_update(parameters_to_ndarrays(fitins.parameters), fitins.config,
                                         context.node_config["partition-id"], context.node_config["num-partitions"])
    n = 1 if fitins.config.get("equal-weight") else n
    fitres = FitRes(Status(Code.OK, "ok"), ndarrays_to_parameters(weights), n, {})
    return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)


def train_and_clip(msg, context):
    """What ``secaggplus_mod`` masks: the trained update, clipped first if the server asks for DP.

    ``fixedclipping_mod`` clips ``new - old`` to L2 norm ``clipping_norm`` (sent by
    ``DifferentialPrivacyClientSideFixedClipping``); it runs inside ``secaggplus_mod``, so the
    clipped update is masked and the server never sees it alone.
    """
    if KEY_CLIPPING_NORM in compat.recorddict_to_fitins(msg.content, keep_input=True).config:
        return fixedclipping_mod(msg, context, _legacy_train)
    return _legacy_train(msg, context)


def secagg_router(msg, context, call_next):
    """A client mod: SecAgg+ messages go through Flower's ``secaggplus_mod``, the rest straight on.

    One ``ClientApp`` thus serves plain FedAvg, SecAgg+ and SecAgg+ with client-side clipping
    rounds in the same simulation.
    """
    if msg.metadata.message_type == MessageType.TRAIN and RECORD_KEY_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, context, train_and_clip)
    return call_next(msg, context)


# --------------------------------------------------------------------------- server side
def legacy_fedavg(experiment, num_clients, *, evaluate_fn=None, equal_weight=False):
    """Flower's legacy ``FedAvg`` over every client, from ``experiment``'s initial weights and settings.

    ``equal_weight`` asks each client to report one example, so every client weighs the same
    (client-level DP); ``evaluate_fn`` is Flower's legacy server-side evaluation.
    """
    extra = {"equal-weight": True} if equal_weight else {}
    return LegacyFedAvg(
        fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=num_clients, min_available_clients=num_clients,
        initial_parameters=ndarrays_to_parameters(fedavg.initial_weights(experiment.seed)), evaluate_fn=evaluate_fn,
        on_fit_config_fn=lambda rnd: {**experiment.client_config(), "server-round": rnd, **extra})


def secagg_workflow(settings, *, max_weight):
    """Flower's SecAgg+ workflow (inside the legacy ``DefaultWorkflow``) with ``settings``' shares and
    quantisation (a :class:`SecureRound` or a :class:`SecureDPRun`)."""
    return DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(
        num_shares=settings.num_shares, reconstruction_threshold=settings.reconstruction_threshold,
        max_weight=max_weight, clipping_range=settings.clipping_range,
        quantization_range=settings.quantization_range, modulus_range=settings.modulus_range))


@dataclasses.dataclass(frozen=True)
class SecureRound:
    """One FedAvg round through SecAgg+, and the same round in the clear, from the same start.

    Parameters
    ----------
    name : str
    experiment : fedavg.Experiment
        The data split, local training and seed; only one round is run.
    num_shares : int or float
        SecAgg+ shares each client's secrets among this many neighbours (a float: a fraction
        of the clients).
    reconstruction_threshold : int or float
        Shares needed to rebuild a secret: up to ``num_shares - threshold`` neighbours may drop.
    clipping_range, quantization_range, modulus_range
        SecAgg+'s quantisation: weights are clipped to ``[-clipping_range, clipping_range]`` and
        mapped to ``quantization_range`` integer levels; masks live modulo ``modulus_range``.
    """

    name: str
    experiment: fedavg.Experiment = fedavg.Experiment("secagg", scheme="dirichlet", rounds=1)
    num_shares: int | float = 5
    reconstruction_threshold: int | float = 3
    clipping_range: float = 8.0
    quantization_range: int = 2**22
    modulus_range: int = 2**32

    max_weight: float = 1000.0

    def error_bound(self, num_examples):
        """The largest gap SecAgg+'s rounding can open between its average and plain FedAvg's.

        Each client scales its weights by ``r_i = n_i / max_weight`` and rounds them to a grid of
        step ``2 * clipping_range / quantization_range``; stochastic rounding moves each by less
        than one step. The server divides the sum by ``sum(r_i)``, so ``K`` clients give at most
        ``K * step / sum(r_i)``.
        """
        num_examples = np.asarray(num_examples, dtype=float)
        step = 2 * self.clipping_range / self.quantization_range
        return len(num_examples) * step / (num_examples.sum() / self.max_weight)

    def strategy_and_workflow(self, num_clients):
        """Flower's set-up: legacy FedAvg over every client, run by the SecAgg+ workflow."""
        return legacy_fedavg(self.experiment, num_clients), secagg_workflow(self, max_weight=self.max_weight)

    def run(self, grid, context, num_clients, evaluate):
        experiment = dataclasses.replace(self.experiment, rounds=1)
        plain_grid, secure_grid = RecordingGrid(grid), RecordingGrid(grid)
        plain = fedavg.run_experiment(plain_grid, experiment, num_clients, evaluate)

        strategy, workflow = dataclasses.replace(self, experiment=experiment).strategy_and_workflow(num_clients)
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=1), strategy=strategy)
        start = time.perf_counter()
        workflow(secure_grid, legacy)
        seconds = time.perf_counter() - start
        secure_weights = legacy.state.array_records[MAIN_PARAMS_RECORD].to_numpy_ndarrays()
        return SecureResult(self, plain, secure_weights, float(evaluate(1, _arrays(secure_weights))["accuracy"]),
                            plain_grid.received, secure_grid.received, seconds)


@dataclasses.dataclass(frozen=True)
class SecureDPRun:
    """Client-level DP through SecAgg+: clients clip, SecAgg+ sums, the server adds the noise.

    Every round runs Flower's SecAgg+ workflow around ``DifferentialPrivacyClientSideFixedClipping``
    (legacy FedAvg inside): the server sends the clipping norm, each client clips its update with
    ``fixedclipping_mod`` and masks it with ``secaggplus_mod``, the server unmasks the sum of the
    clipped updates, averages it with equal weights and adds Gaussian noise of std
    ``noise_multiplier * clipping_norm / clients``. Every client takes part in every round, so the
    epsilon has no amplification by sampling (Flower's ``RdpAccountant``, ``NO_AMPLIFICATION``).

    Trust: the server sees the exact sum of the clipped updates (the noise is added after it), and
    must add the noise honestly; each client must clip honestly (the server cannot check a masked
    update). The DP guarantee is for whoever sees the released model.

    Parameters
    ----------
    name : str
    experiment : fedavg.Experiment
        Split, local training, rounds, ``noise_multiplier``, ``clipping_norm``, ``delta``, seed.
    num_shares, reconstruction_threshold, clipping_range, quantization_range, modulus_range
        SecAgg+'s settings, as in :class:`SecureRound`. Each client weighs 1 (``max_weight=1``).
    """

    name: str
    experiment: fedavg.Experiment = fedavg.Experiment("secure-dp", noise_multiplier=1.0)
    num_shares: int | float = 5
    reconstruction_threshold: int | float = 3
    clipping_range: float = 8.0
    quantization_range: int = 2**22
    modulus_range: int = 2**32

    def __post_init__(self):
        if self.experiment.noise_multiplier is None:
            raise InvalidParameterError("SecureDPRun needs an experiment with a noise_multiplier")

    def strategy_and_workflow(self, num_clients, evaluate_fn):
        """Flower's set-up: FedAvg, wrapped for DP with client-side clipping, run by SecAgg+."""
        e = self.experiment
        strategy = DifferentialPrivacyClientSideFixedClipping(
            legacy_fedavg(e, num_clients, evaluate_fn=evaluate_fn, equal_weight=True),
            noise_multiplier=e.noise_multiplier, clipping_norm=e.clipping_norm, num_sampled_clients=num_clients)
        return strategy, secagg_workflow(self, max_weight=1.0)

    def accountant(self, num_clients):
        """Flower's RDP accountant after this run's rounds: ``num_clients`` of ``num_clients`` each round."""
        e = self.experiment
        accountant = fedavg.client_level_accountant(e, num_clients)
        accountant.compose(GaussianPrivacyEvent(e.noise_multiplier, num_clients, num_clients), e.rounds)
        return accountant

    def run(self, grid, context, num_clients, evaluate):
        """Run the DP rounds through SecAgg+ inside a ``ServerApp``; return a :class:`SecureDPHistory`."""
        start = time.perf_counter()
        accuracy = {}

        def evaluate_fn(server_round, ndarrays, config):
            accuracy[server_round] = float(evaluate(server_round, _arrays(ndarrays))["accuracy"])
            return 0.0, {"accuracy": accuracy[server_round]}

        strategy, workflow = self.strategy_and_workflow(num_clients, evaluate_fn)
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=self.experiment.rounds),
                               strategy=strategy)
        recording = RecordingGrid(grid)
        with reproducibility.seeded_numpy_global(self.experiment.seed):  # Flower's noise comes from np.random
            workflow(recording, legacy)
        return SecureDPHistory(
            self.experiment, accuracy=[accuracy[r] for r in sorted(accuracy)],
            epsilon=float(self.accountant(num_clients).get_epsilon(self.experiment.delta)),
            weights=legacy.state.array_records[MAIN_PARAMS_RECORD].to_numpy_ndarrays(),
            seconds=time.perf_counter() - start, server_view=recording.received)


@dataclasses.dataclass(frozen=True)
class SecureDPHistory(fedavg.History):
    """A :class:`fedavg.History` plus every reply the server received (``server_view``)."""

    server_view: list = dataclasses.field(default_factory=list)

    def arrays_the_server_saw(self):
        """Every float array the server received in any stage (none: only masked bytes)."""
        return [a for stage in self.server_view for _, arrays, _ in stage for rec in arrays.values() for a in rec]

    def masked_vectors(self, server_round=1):
        """What the server received from each client in round ``server_round``: masked integers."""
        rounds = [stage for stage in self.server_view
                  if any(Key.MASKED_PARAMETERS in configs.get(RECORD_KEY_CONFIGS, {}) for _, _, configs in stage)]
        return {nid: [bytes_to_ndarray(b) for b in configs[RECORD_KEY_CONFIGS][Key.MASKED_PARAMETERS]]
                for nid, _, configs in rounds[server_round - 1]}


def _arrays(weights):
    from flwr.app import ArrayRecord

    return ArrayRecord(weights)


@dataclasses.dataclass(frozen=True)
class SecureResult:
    """What a :class:`SecureRound` measured."""

    round: SecureRound
    plain: fedavg.History
    secure_weights: list
    secure_accuracy: float
    plain_view: list
    secure_view: list
    secure_seconds: float = 0.0

    def to_frame(self):
        """The round in the clear beside the same round through SecAgg+: accuracy and seconds."""
        import pandas as pd

        return pd.DataFrame({"test accuracy": [self.plain.final_accuracy, self.secure_accuracy],
                             "seconds": [self.plain.seconds, self.secure_seconds]},
                            index=pd.Index(["FedAvg in the clear", "FedAvg through SecAgg+"], name="round"))

    @property
    def max_abs_difference(self):
        """The largest gap between any SecAgg+ and plain FedAvg weight."""
        return max(float(np.max(np.abs(a - b))) for a, b in zip(self.secure_weights, self.plain.weights))

    def client_updates(self):
        """The weights each client sent in the plain round: what a FedAvg server sees."""
        train = self.plain_view[0]
        return {nid: arrays["arrays"] for nid, arrays, _ in train}

    def masked_vectors(self):
        """What the SecAgg+ server received from each client: masked integers mod ``modulus_range``."""
        for stage in self.secure_view:
            vectors = {nid: configs[RECORD_KEY_CONFIGS].get(Key.MASKED_PARAMETERS)
                       for nid, _, configs in stage if RECORD_KEY_CONFIGS in configs}
            if vectors and all(v is not None for v in vectors.values()):
                return {nid: [bytes_to_ndarray(b) for b in v] for nid, v in vectors.items()}
        raise RunError("no masked vectors in the recorded SecAgg+ round")

    def arrays_the_server_saw(self):
        """Every float array the SecAgg+ server received in any stage (none: only masked bytes)."""
        return [a for stage in self.secure_view for _, arrays, _ in stage for rec in arrays.values() for a in rec]
