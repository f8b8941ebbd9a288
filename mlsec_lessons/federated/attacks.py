"""Malicious Flower clients: model replacement with a backdoor, and a sign-flipped, boosted update.

A malicious client runs the same ``ClientApp`` as the honest ones; the train config (an
:class:`Attack`'s :meth:`Attack.config`) names the attacking partition ids, so one app serves
both and :func:`.fedavg.client_update` hands the attackers' rounds to :func:`malicious_update`.

* **Model replacement** (Bagdasaryan et al. 2020, "How to backdoor federated learning"): the
  attacker trains the global model on its records plus copies of some of them stamped with a
  trigger (:func:`mlsec_lessons.poisoning.add_trigger`) and relabelled to ``target``, then sends
  ``G + boost * (X - G)`` with ``boost = n_clients / server_lr``: once FedAvg divides by the
  number of clients, what is left is about the attacker's backdoored model ``X``.
* **Sign flip**: the attacker trains honestly and sends ``G - boost * (X - G)``, pushing the
  model back the way the honest clients pull it, ``boost`` times as hard.

Both are :func:`scale_update` with a different factor. An attacker that knows the server bounds
update norms sends its update at a chosen L2 ``norm`` instead of boosting it.
"""
import dataclasses

import numpy as np

from ..errors import InvalidParameterError
from ..validation import as_generator, check_choice, check_fraction, check_int, check_real

ATTACKS = ("backdoor", "sign-flip")


@dataclasses.dataclass(frozen=True)
class Attack:
    """Who attacks, how, and in which rounds.

    Parameters
    ----------
    kind : {"backdoor", "sign-flip"}
    attackers : tuple of int, default=(0,)
        The malicious clients' partition ids.
    boost : float or None, default=None
        The factor on the attacker's update (``G + boost * (X - G)``; negated for ``"sign-flip"``).
        None: ``n_clients / server_learning_rate``, Bagdasaryan et al.'s model replacement.
    norm : float or None, default=None
        Send the (signed) update at this L2 norm instead of boosting it: an attacker that knows
        the server clips updates at ``norm`` loses nothing to the clipping.
    server_learning_rate : float, default=1.0
        The server's step on the averaged update (1 for FedAvg), which the attacker assumes.
    target : int, default=0
        The class that triggered inputs should land in (``"backdoor"``).
    poison_fraction : float, default=0.5
        Triggered copies of this share of the attacker's non-target records join its training set.
    epochs : int, default=5
        The backdoor attacker's local epochs (honest clients use the experiment's).
    rounds : tuple of int or None, default=(1,)
        The rounds in which the attackers attack; they train honestly in the others. None: every round.
    """

    kind: str
    attackers: tuple = (0,)
    boost: float | None = None
    norm: float | None = None
    server_learning_rate: float = 1.0
    target: int = 0
    poison_fraction: float = 0.5
    epochs: int = 5
    rounds: tuple | None = (1,)

    def __post_init__(self):
        check_choice(self.kind, "kind", ATTACKS)
        if not self.attackers:
            raise InvalidParameterError("attackers must name at least one partition id")
        for pid in self.attackers:
            check_int(pid, "attackers", min_value=0)
        if self.boost is not None and self.norm is not None:
            raise InvalidParameterError("give boost or norm, not both")
        positive = dict(min_value=0, include_boundaries="neither")
        for field in ("boost", "norm"):
            if getattr(self, field) is not None:
                check_real(getattr(self, field), field, **positive)
        check_real(self.server_learning_rate, "server_learning_rate", **positive)
        check_int(self.target, "target", min_value=0, max_value=9)
        check_fraction(self.poison_fraction, "poison_fraction", include_boundaries="right")
        check_int(self.epochs, "epochs", min_value=1)
        for server_round in self.rounds or ():
            check_int(server_round, "rounds", min_value=1)

    def factor(self, num_clients):
        """The boost: ``boost``, or ``num_clients / server_learning_rate`` (model replacement)."""
        return float(self.boost) if self.boost is not None else num_clients / self.server_learning_rate

    def config(self, num_clients):
        """The train-config entries that tell each client whether, and how, to attack."""
        return {"attack": self.kind, "attackers": [int(p) for p in self.attackers],
                "attack-rounds": [int(r) for r in self.rounds] if self.rounds else [],
                "boost": self.factor(num_clients), "attack-norm": float(self.norm or 0.0),
                "target": int(self.target), "poison-fraction": float(self.poison_fraction),
                "attack-epochs": int(self.epochs)}


def is_attacking(config, partition_id):
    """Whether the client ``partition_id`` attacks in this round, as the train ``config`` says."""
    if not config.get("attack"):
        return False
    rounds = list(config.get("attack-rounds", []))
    return int(partition_id) in list(config["attackers"]) and (
        not rounds or int(config.get("server-round", 0)) in rounds)


def update_norm(weights, global_weights):
    """The L2 norm of ``weights - global_weights`` over every layer together."""
    return float(np.sqrt(sum(np.sum((np.asarray(w, np.float64) - g) ** 2)
                             for w, g in zip(weights, global_weights, strict=True))))


def scale_update(weights, global_weights, factor=None, *, norm=None):
    """``G + factor * (weights - G)``, or the update rescaled to L2 ``norm`` (its sign kept by ``factor``).

    Parameters
    ----------
    weights, global_weights : list of ndarray
        The client's trained model and the global model it started from (``G``).
    factor : float
        Negative flips the update.
    norm : float, optional
        Rescale the update to this length instead; ``factor``'s sign still applies.

    Examples
    --------
    >>> import numpy as np
    >>> g, w = [np.zeros(2)], [np.array([3.0, 4.0])]
    >>> scale_update(w, g, 10)[0].tolist(), scale_update(w, g, -1, norm=1.0)[0].round(12).tolist()
    ([30.0, 40.0], [-0.6, -0.8])
    """
    factor = 1.0 if factor is None else float(factor)
    if norm is not None:
        length = update_norm(weights, global_weights)
        factor = np.sign(factor) * float(norm) / length if length > 0 else 0.0
    return [(g + factor * (np.asarray(w) - g)).astype(np.asarray(w).dtype)
            for w, g in zip(weights, global_weights, strict=True)]


def backdoor_training_set(x, y, fraction, target, seed=0):
    """The attacker's records plus triggered copies of ``fraction`` of its non-target ones, labelled ``target``.

    Keeping the clean records keeps the backdoored model accurate on the main task, so that the
    replaced global model does not give itself away by its accuracy.
    """
    from ..poisoning import add_trigger

    candidates = np.flatnonzero(np.asarray(y) != target)
    chosen = as_generator(seed).choice(candidates, int(round(fraction * len(candidates))), replace=False)
    x_all = np.concatenate([x, add_trigger(x[chosen])]).astype(np.float32)
    return x_all, np.concatenate([y, np.full(len(chosen), target, dtype=np.asarray(y).dtype)])


def malicious_update(weights, config, partition_id, num_partitions):
    """An attacking client's round: what it sends instead of its honest update.

    Returns ``(weights, num_examples, loss)`` like :func:`.fedavg.client_update`; it reports its
    honest record count, so FedAvg weighs it like any other client.
    """
    from . import fedavg

    seed = fedavg.client_seed(config["seed"], config.get("server-round", 0), partition_id)
    x, y = fedavg.client_data(partition_id, num_partitions, config["scheme"], config["alpha"], config["seed"])
    if config["attack"] == "backdoor":
        x_bad, y_bad = backdoor_training_set(x, y, float(config["poison-fraction"]), int(config["target"]), seed)
        trained, loss = fedavg.local_update(weights, x_bad, y_bad, int(config["attack-epochs"]), float(config["lr"]),
                                            int(config["batch-size"]), seed)
        factor = float(config["boost"])
    else:  # sign-flip: the honest update, reversed
        trained, _, loss = fedavg.honest_update(weights, config, partition_id, num_partitions)
        factor = -float(config["boost"])
    norm = float(config.get("attack-norm", 0.0)) or None
    return scale_update(trained, weights, factor, norm=norm), len(x), loss
