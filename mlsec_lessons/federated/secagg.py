"""Secure aggregation with Flower's SecAgg+ (Bell et al. 2020), next to plain FedAvg.

Flower runs SecAgg+ as a *workflow* on the server (``SecAggPlusWorkflow``, inside the legacy
``DefaultWorkflow``) and as a *mod* on each client (``secaggplus_mod``), which wraps the client's
training: it quantises the weighted update, adds the pairwise and self masks, and answers the
server's requests for key shares when a neighbour drops out. The server only ever adds masked
vectors; the masks cancel in the sum.

To show that, both rounds here go through :class:`RecordingGrid`, which keeps every reply the
server receives: in the plain round the clients' weights, in the SecAgg+ round only masked
integers. :mod:`.masking` builds the same protocol from scratch in numpy.
"""
import dataclasses
import time

import numpy as np
from flwr.app import Message
from flwr.app.message_type import MessageType
from flwr.client.mod import secaggplus_mod
from flwr.common import Code, bytes_to_ndarray, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy import FedAvg as LegacyFedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

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
    """The client's training in the legacy FitIns/FitRes format that ``secaggplus_mod`` speaks."""
    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    weights, n, _ = fedavg.client_update(parameters_to_ndarrays(fitins.parameters), fitins.config,
                                         context.node_config["partition-id"], context.node_config["num-partitions"])
    fitres = FitRes(Status(Code.OK, "ok"), ndarrays_to_parameters(weights), n, {})
    return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)


def secagg_router(msg, context, call_next):
    """A client mod: SecAgg+ messages go through Flower's ``secaggplus_mod``, the rest straight on.

    One ``ClientApp`` thus serves plain FedAvg and SecAgg+ rounds in the same simulation.
    """
    if msg.metadata.message_type == MessageType.TRAIN and RECORD_KEY_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, context, _legacy_train)
    return call_next(msg, context)


# --------------------------------------------------------------------------- server side
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

    def run(self, grid, context, num_clients, evaluate):
        experiment = dataclasses.replace(self.experiment, rounds=1)
        plain_grid, secure_grid = RecordingGrid(grid), RecordingGrid(grid)
        plain = fedavg.run_experiment(plain_grid, experiment, num_clients, evaluate)

        strategy = LegacyFedAvg(
            fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=num_clients, min_available_clients=num_clients,
            initial_parameters=ndarrays_to_parameters(fedavg.initial_weights(experiment.seed)),
            on_fit_config_fn=lambda rnd: {**experiment.client_config(), "server-round": rnd})
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=1), strategy=strategy)
        workflow = DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(
            num_shares=self.num_shares, reconstruction_threshold=self.reconstruction_threshold,
            max_weight=self.max_weight, clipping_range=self.clipping_range, quantization_range=self.quantization_range,
            modulus_range=self.modulus_range))
        start = time.perf_counter()
        workflow(secure_grid, legacy)
        seconds = time.perf_counter() - start
        secure_weights = legacy.state.array_records[MAIN_PARAMS_RECORD].to_numpy_ndarrays()
        return SecureResult(self, plain, secure_weights, float(evaluate(1, _arrays(secure_weights))["accuracy"]),
                            plain_grid.received, secure_grid.received, seconds)


def _arrays(weights):
    from flwr.app import ArrayRecord

    return ArrayRecord(weights)


@dataclasses.dataclass
class SecureResult:
    """What a :class:`SecureRound` measured."""

    round: SecureRound
    plain: fedavg.History
    secure_weights: list
    secure_accuracy: float
    plain_view: list
    secure_view: list
    secure_seconds: float = 0.0

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
        raise RuntimeError("no masked vectors in the recorded SecAgg+ round")

    def arrays_the_server_saw(self):
        """Every float array the SecAgg+ server received in any stage (none: only masked bytes)."""
        return [a for stage in self.secure_view for _, arrays, _ in stage for rec in arrays.values() for a in rec]
