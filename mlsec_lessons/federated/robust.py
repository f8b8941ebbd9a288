"""Robust aggregation with Flower's own strategies, and norm bounding.

Flower 1.42 ships the robust aggregators of the literature as Message-API strategies:
``FedTrimmedAvg`` (coordinate-wise trimmed mean, Yin et al. 2018), ``FedMedian`` (coordinate-wise
median, same paper), ``Krum`` and ``MultiKrum`` (Blanchard et al. 2017). Norm bounding (Sun et al.
2019, "Can you really backdoor federated learning?") clips each update ``w - G`` to an L2 norm
``M`` at the server and averages; Flower has no strategy of that name, but its
``DifferentialPrivacyServerSideFixedClipping`` with ``noise_multiplier=0`` is exactly that: it
clips each update with ``compute_clip_model_update`` and adds noise of std 0.

:func:`make_aggregator` builds any of them for the course's runs, with :class:`CourseStrategy`
mixed in (it tells each client the round number and keeps a copy of every reply the server
received). :func:`aggregate` runs the same strategy object's ``aggregate_train`` in this process
on recorded replies, so one simulated round can be aggregated by every defence.
"""
import dataclasses

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, Metadata, MetricRecord, RecordDict
from flwr.app.message_type import MessageType
from flwr.serverapp.strategy import (
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    FedMedian,
    FedTrimmedAvg,
    Krum,
    MultiKrum,
)
from flwr.serverapp.strategy.multikrum import select_multikrum

from ..errors import InvalidParameterError
from ..validation import check_choice, check_fraction, check_int, check_real

AGGREGATORS = ("fedavg", "trimmed-mean", "median", "krum", "multi-krum", "norm-bound")


@dataclasses.dataclass(frozen=True)
class ClientReply:
    """What the server received from one client in one round."""

    node_id: int
    partition_id: int
    num_examples: int
    weights: list

    @classmethod
    def from_message(cls, msg):
        metrics = next(iter(msg.content.metric_records.values()))
        arrays = next(iter(msg.content.array_records.values()))
        return cls(int(msg.metadata.src_node_id), int(metrics.get("partition-id", -1)),
                   int(metrics["num-examples"]), arrays.to_numpy_ndarrays())

    def to_message(self):
        """A fresh reply ``Message`` from ``node_id`` (strategies such as ``FedMedian`` consume the
        arrays they read, so each aggregation gets its own copies)."""
        content = RecordDict({"arrays": ArrayRecord([np.array(w) for w in self.weights]),
                              "metrics": MetricRecord({"num-examples": self.num_examples,
                                                       "partition-id": self.partition_id})})
        # outside a run there is no run id for Message() to fill in: give the reply's metadata whole
        metadata = Metadata(run_id=0, message_id="", src_node_id=self.node_id, dst_node_id=0, reply_to_message_id="",
                            group_id="", created_at=0.0, ttl=3600.0, message_type=MessageType.TRAIN)
        return Message(content, metadata=metadata)


class RoundSeed:
    """Mixed into a Flower strategy: sends the round number with each train message, so each
    client's shuffling is reproducible."""

    def configure_train(self, server_round, arrays, config, grid):
        config = ConfigRecord({**config, "server-round": server_round})
        return super().configure_train(server_round, arrays, config, grid)


class RoundSeedFedAvg(RoundSeed, FedAvg):
    """Flower's ``FedAvg`` with :class:`RoundSeed` and its own ``aggregate_train``, which Flower's
    DP accounting requires of the strategy it wraps."""


class CourseStrategy(RoundSeed):
    """:class:`RoundSeed`, and ``received[round]``: the :class:`ClientReply` list the server got in
    that round, kept before the strategy aggregates (or clips) it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.received = {}

    def aggregate_train(self, server_round, replies):
        replies = list(replies)
        self.received[server_round] = [ClientReply.from_message(m) for m in replies if not m.has_error()]
        return super().aggregate_train(server_round, replies)


class CourseFedAvg(CourseStrategy, FedAvg):
    """Flower's ``FedAvg``, with :class:`CourseStrategy`."""


class CourseFedTrimmedAvg(CourseStrategy, FedTrimmedAvg):
    """Flower's ``FedTrimmedAvg``, with :class:`CourseStrategy`."""


class CourseFedMedian(CourseStrategy, FedMedian):
    """Flower's ``FedMedian``, with :class:`CourseStrategy`."""


class CourseKrum(CourseStrategy, Krum):
    """Flower's ``Krum``, with :class:`CourseStrategy`."""


class CourseMultiKrum(CourseStrategy, MultiKrum):
    """Flower's ``MultiKrum``, with :class:`CourseStrategy`."""


class NormBound(CourseStrategy, DifferentialPrivacyServerSideFixedClipping):
    """Norm bounding (Sun et al. 2019): Flower's server-side fixed clipping with no noise.

    Each update ``w - G`` is clipped to L2 norm ``clipping_norm``, then ``strategy`` (FedAvg)
    averages. ``received`` keeps the replies as they arrived, before the clipping.
    """

    def __init__(self, strategy, clipping_norm, num_sampled_clients):
        super().__init__(strategy, noise_multiplier=0.0, clipping_norm=clipping_norm,
                         num_sampled_clients=num_sampled_clients)


def make_aggregator(name, num_clients, *, num_malicious=1, trim=0.1, clipping_norm=1.0):
    """A Flower strategy that trains every one of ``num_clients`` clients each round and aggregates by ``name``.

    Parameters
    ----------
    name : {"fedavg", "trimmed-mean", "median", "krum", "multi-krum", "norm-bound"}
    num_clients : int
    num_malicious : int, default=1
        Krum's and MultiKrum's ``f``: each client is scored on its ``n - f - 2`` nearest others;
        MultiKrum averages the ``n - f`` best-scored clients.
    trim : float, default=0.1
        ``FedTrimmedAvg``'s ``beta``: the share cut from each end of every coordinate.
    clipping_norm : float, default=1.0
        The bound ``M`` of ``"norm-bound"``.
    """
    check_choice(name, "name", AGGREGATORS)
    num_clients = check_int(num_clients, "num_clients", min_value=2)
    num_malicious = check_int(num_malicious, "num_malicious", min_value=0, max_value=num_clients - 1)
    trim = check_fraction(trim, "trim", include_boundaries="left")
    if trim >= 0.5:
        raise InvalidParameterError(f"trim must be in [0, 0.5), got {trim!r}")
    check_real(clipping_norm, "clipping_norm", min_value=0, include_boundaries="neither")
    from .apps import quiet_flower  # apps imports this module

    with quiet_flower():  # Flower warns that fraction_evaluate=0 skips federated evaluation
        return _build(name, num_clients, num_malicious, trim, clipping_norm)


def _build(name, num_clients, num_malicious, trim, clipping_norm):
    every = dict(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=num_clients,
                 min_train_nodes=num_clients)
    if name == "norm-bound":
        return NormBound(FedAvg(**every), clipping_norm, num_clients)
    if name == "trimmed-mean":
        return CourseFedTrimmedAvg(**every, beta=trim)
    if name == "krum":
        return CourseKrum(**every, num_malicious_nodes=num_malicious)
    if name == "multi-krum":
        return CourseMultiKrum(**every, num_malicious_nodes=num_malicious,
                               num_nodes_to_select=num_clients - num_malicious)
    return {"fedavg": CourseFedAvg, "median": CourseFedMedian}[name](**every)


def aggregate(strategy, replies, global_weights, server_round=1):
    """Run ``strategy``'s own ``aggregate_train`` on ``replies`` here, outside a simulation.

    Parameters
    ----------
    strategy : Flower strategy
        From :func:`make_aggregator`; a norm bound clips against ``global_weights``.
    replies : list of ClientReply
    global_weights : list of ndarray
        The model the clients started the round from.

    Returns
    -------
    list of ndarray
        The new global weights.
    """
    if not replies:
        raise InvalidParameterError("aggregate needs at least one reply")
    from .apps import quiet_flower  # apps imports this module

    if isinstance(strategy, DifferentialPrivacyServerSideFixedClipping):
        strategy.current_arrays = ArrayRecord([np.array(w) for w in global_weights])  # what configure_train sets
    with quiet_flower():
        arrays, _ = strategy.aggregate_train(server_round, [reply.to_message() for reply in replies])
    return arrays.to_numpy_ndarrays()


def krum_choice(replies, num_malicious=1, num_selected=1):
    """The partition ids that Flower's Krum (``num_selected=1``) or MultiKrum would average."""
    contents = [reply.to_message().content for reply in replies]
    chosen = select_multikrum(contents, num_malicious_nodes=num_malicious, num_nodes_to_select=num_selected)
    return sorted(int(next(iter(c.metric_records.values()))["partition-id"]) for c in chosen)


def compare_aggregators(scenarios, global_weights, num_clients, evaluate, aggregators=AGGREGATORS, **settings):
    """Aggregate each scenario's replies with each aggregator, here, and score the new global model.

    Parameters
    ----------
    scenarios : mapping of str to list of ClientReply
        One round's replies, e.g. ``{"no attack": ..., "backdoor": ..., "sign-flip": ...}``, all
        trained from ``global_weights``.
    global_weights : list of ndarray
    num_clients : int
    evaluate : callable
        A Flower ``evaluate_fn`` (:func:`.fedavg.make_test_set_evaluator`): ``(round, ArrayRecord)``
        to a ``MetricRecord`` with ``"accuracy"`` and, for a backdoor target, ``"attack-success"``.
    aggregators : sequence of str, default=AGGREGATORS
    **settings
        ``num_malicious``, ``trim``, ``clipping_norm`` for :func:`make_aggregator`.

    Returns
    -------
    pandas.DataFrame
        One row per (aggregator, scenario): ``accuracy`` and ``attack success``.
    """
    import pandas as pd

    if not scenarios:
        raise InvalidParameterError("scenarios must name at least one list of replies")
    rows = []
    for name in aggregators:
        for scenario, replies in scenarios.items():
            weights = aggregate(make_aggregator(name, num_clients, **settings), replies, global_weights)
            metrics = evaluate(1, ArrayRecord(weights))
            rows.append({"aggregator": name, "scenario": scenario, "accuracy": float(metrics["accuracy"]),
                         "attack success": float(metrics.get("attack-success", np.nan))})
    return pd.DataFrame(rows).set_index(["aggregator", "scenario"])
