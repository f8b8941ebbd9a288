"""Malicious Flower clients and robust aggregation (lesson 06): the attackers send what they claim,
the in-process use of Flower's strategies matches numpy oracles, and on a tiny run the backdoor gets
in under FedAvg and not under a norm bound. (The attackers inside a Flower simulation are tested in
``test_federated.py``, on its one simulation: Ray starts once for both.)"""
import numpy as np
import pytest

from mlsec_lessons.federated import attacks, fedavg, robust
from mlsec_lessons.federated.apps import run_simulation
from mlsec_lessons.federated.attacks import Attack
from mlsec_lessons.federated.robust import ClientReply


# --------------------------------------------------------------------------- hand-made updates
def hand_made(seed=0, n=7, shapes=((3, 4), (5,))):
    """A global model and ``n`` replies around it, one of them far off (partition 0)."""
    rng = np.random.default_rng(seed)
    start = [rng.normal(size=s).astype(np.float32) for s in shapes]
    replies = []
    for pid in range(n):
        scale = 40.0 if pid == 0 else 1.0
        weights = [(g + scale * rng.normal(size=g.shape)).astype(np.float32) for g in start]
        replies.append(ClientReply(node_id=100 + pid, partition_id=pid, num_examples=10 + pid, weights=weights))
    return start, replies


def flat(weights):
    return np.concatenate([np.ravel(w) for w in weights]).astype(np.float64)


def test_scale_update_boosts_flips_and_rescales():
    start, replies = hand_made()
    w = replies[1].weights
    update = flat(w) - flat(start)
    assert np.allclose(flat(attacks.scale_update(w, start, 10.0)) - flat(start), 10 * update, atol=1e-4)
    flipped = flat(attacks.scale_update(w, start, -3.0)) - flat(start)
    assert np.allclose(flipped, -3 * update, atol=1e-4)
    at_norm = attacks.scale_update(w, start, -1.0, norm=0.25)
    assert attacks.update_norm(at_norm, start) == pytest.approx(0.25, rel=1e-5)
    assert np.dot(flat(at_norm) - flat(start), update) < 0  # the sign survives the rescaling


def test_attack_settings_reach_only_the_attackers_in_their_rounds():
    config = {**dict(fedavg.Experiment("x").client_config()), **Attack("backdoor", attackers=(2,), rounds=(3,)).config(10)}
    assert config["boost"] == 10.0  # model replacement: n_clients / server learning rate
    assert attacks.is_attacking({**config, "server-round": 3}, 2)
    assert not attacks.is_attacking({**config, "server-round": 2}, 2)
    assert not attacks.is_attacking({**config, "server-round": 3}, 1)
    assert Attack("sign-flip", boost=5.0, server_learning_rate=0.5).factor(10) == 5.0
    assert Attack("backdoor", server_learning_rate=0.5).factor(10) == 20.0


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "label-flip"}, "kind must be"), ({"kind": "backdoor", "attackers": ()}, "at least one"),
    ({"kind": "backdoor", "boost": 2.0, "norm": 1.0}, "not both"), ({"kind": "backdoor", "boost": -1.0}, "boost"),
    ({"kind": "backdoor", "target": 10}, "target"), ({"kind": "backdoor", "rounds": (0,)}, "rounds"),
])
def test_bad_attacks_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Attack(**kwargs)


def test_bad_robust_settings_are_refused():
    with pytest.raises(ValueError, match="aggregator must be"):
        fedavg.Experiment("x", aggregator="bulyan")
    with pytest.raises(ValueError, match="DP runs with aggregator='fedavg' only"):
        fedavg.Experiment("x", aggregator="median", noise_multiplier=1.0)
    with pytest.raises(ValueError, match=r"trim must be in \[0, 0.5\)"):
        robust.make_aggregator("trimmed-mean", 10, trim=0.5)
    with pytest.raises(ValueError, match="starts from 'later', which is not an earlier job"):
        run_simulation([fedavg.Experiment("a", start_from="later"), fedavg.Experiment("later")])


def test_the_backdoor_training_set_adds_triggered_copies_labelled_target():
    x, y = fedavg.client_data(0, 10, "iid", 0.3, 0)
    x_bad, y_bad = attacks.backdoor_training_set(x, y, 0.5, target=3, seed=0)
    added = len(x_bad) - len(x)
    assert added == round(0.5 * np.sum(y != 3)) and np.array_equal(x_bad[:len(x)], x)
    assert np.all(y_bad[len(y):] == 3) and np.all(x_bad[len(x):, -1, -1, 0] == 1.0)  # the corner of the pattern


def test_malicious_updates_are_the_honest_or_backdoored_update_scaled():
    start = fedavg.initial_weights(0)
    config = {**dict(fedavg.Experiment("x", local_epochs=1).client_config()), "server-round": 1}
    honest, n, _ = fedavg.honest_update(start, config, 1, 10)
    flip = {**config, **Attack("sign-flip", attackers=(1,), boost=7.0).config(10)}
    sent, n_sent, _ = fedavg.client_update(start, flip, 1, 10)  # the dispatch a ClientApp runs
    assert n_sent == n
    assert np.allclose(flat(sent) - flat(start), -7.0 * (flat(honest) - flat(start)), atol=1e-4)
    # the backdoor attacker: its poisoned local model, boosted by n_clients, or sent at the bound
    bad = {**config, **Attack("backdoor", attackers=(1,), epochs=1).config(10)}
    x, y = fedavg.client_data(1, 10, "iid", 0.3, 0)
    seed = fedavg.client_seed(0, 1, 1)
    trained, _ = fedavg.local_update(start, *attacks.backdoor_training_set(x, y, 0.5, 0, seed), 1, 0.1, 16, seed)
    boosted, _, _ = fedavg.client_update(start, bad, 1, 10)
    assert np.allclose(flat(boosted) - flat(start), 10.0 * (flat(trained) - flat(start)), atol=1e-3)
    bounded, _, _ = fedavg.client_update(start, {**config, **Attack("backdoor", attackers=(1,), epochs=1,
                                                                    norm=0.5).config(10)}, 1, 10)
    assert attacks.update_norm(bounded, start) == pytest.approx(0.5, rel=1e-4)
    assert fedavg.client_update(start, bad, 2, 10)[1] == len(fedavg.client_data(2, 10, "iid", 0.3, 0)[1])


# --------------------------------------------------------------------------- Flower's strategies against oracles
def aggregated(name, replies, start, **settings):
    return flat(robust.aggregate(robust.make_aggregator(name, len(replies), **settings), replies, start))


def test_fedavg_is_the_weighted_mean():
    start, replies = hand_made()
    n = np.array([r.num_examples for r in replies], float)
    oracle = (n[:, None] * np.stack([flat(r.weights) for r in replies])).sum(0) / n.sum()
    assert np.allclose(aggregated("fedavg", replies, start), oracle, atol=1e-5)


def test_median_and_trimmed_mean_are_coordinate_wise():
    start, replies = hand_made()
    stack = np.stack([flat(r.weights) for r in replies])
    assert np.allclose(aggregated("median", replies, start), np.median(stack, axis=0), atol=1e-6)
    cut = int(0.2 * len(replies))  # one of seven from each end
    oracle = np.sort(stack, axis=0)[cut:len(replies) - cut].mean(axis=0)
    assert np.allclose(aggregated("trimmed-mean", replies, start, trim=0.2), oracle, atol=1e-5)
    assert np.abs(aggregated("median", replies, start) - flat(start)).max() < 5  # the far-off client is outvoted


def test_krum_picks_the_client_closest_to_its_neighbours():
    start, replies = hand_made()
    stack = np.stack([flat(r.weights) for r in replies])
    d = ((stack[:, None] - stack[None]) ** 2).sum(-1)
    f = 1
    scores = [np.sort(np.delete(d[i], i))[:len(replies) - f - 2].sum() for i in range(len(replies))]
    best = int(np.argmin(scores))
    assert robust.krum_choice(replies, f) == [best] and best != 0
    assert np.allclose(aggregated("krum", replies, start, num_malicious=f), stack[best], atol=1e-6)
    chosen = robust.krum_choice(replies, f, len(replies) - f)
    assert chosen == sorted(np.argsort(scores)[:len(replies) - f].tolist()) and 0 not in chosen


def test_norm_bound_clips_each_update_to_the_bound_then_averages():
    start, replies = hand_made()
    bound = 10.0
    clipped = []
    for r in replies:
        update = flat(r.weights) - flat(start)
        clipped.append(update * min(1.0, bound / np.linalg.norm(update)))
        assert (np.linalg.norm(update) > bound) == (r.partition_id == 0)  # only the far-off one is clipped
    n = np.array([r.num_examples for r in replies], float)
    oracle = flat(start) + (n[:, None] * np.stack(clipped)).sum(0) / n.sum()
    result = aggregated("norm-bound", replies, start, clipping_norm=bound)
    assert np.allclose(result, oracle, atol=1e-5)
    assert np.linalg.norm(result - flat(start)) <= bound + 1e-5


def test_aggregating_twice_gives_the_same_answer_and_leaves_the_replies_alone():
    start, replies = hand_made()
    before = [flat(r.weights) for r in replies]
    strategy = robust.make_aggregator("median", len(replies))
    first, second = (flat(robust.aggregate(strategy, replies, start)) for _ in range(2))
    assert np.array_equal(first, second)  # FedMedian pops the arrays it reads: each call gets fresh messages
    assert all(np.array_equal(b, flat(r.weights)) for b, r in zip(before, replies))
    assert [r.partition_id for r in strategy.received[1]] == list(range(len(replies)))


# --------------------------------------------------------------------------- a tiny run
def test_a_backdoor_gets_in_under_fedavg_and_not_under_a_norm_bound():
    """Three clients, in this process: one honest round, then client 0 replaces the model."""
    from flwr.app import ArrayRecord

    clients, start = 3, fedavg.initial_weights(0)
    config = {**dict(fedavg.Experiment("t", local_epochs=1).client_config()), "server-round": 1}

    def replies(weights, cfg):
        out = []
        for pid in range(clients):
            w, n, _ = fedavg.client_update(weights, cfg, pid, clients)
            out.append(ClientReply(pid, pid, n, w))
        return out

    fedavg_rule = robust.make_aggregator("fedavg", clients)
    warm = robust.aggregate(fedavg_rule, replies(start, config), start)
    attacked = replies(warm, {**config, "server-round": 2, **Attack("backdoor", epochs=3, rounds=(2,)).config(clients)})
    evaluate = fedavg.make_test_set_evaluator(target=0)

    def asr(name):
        return evaluate(1, ArrayRecord(robust.aggregate(robust.make_aggregator(name, clients, clipping_norm=0.5),
                                                        attacked, warm)))["attack-success"]

    before = evaluate(1, ArrayRecord(warm))["attack-success"]
    under_fedavg, under_bound = asr("fedavg"), asr("norm-bound")
    assert before < 0.2 and under_fedavg > 0.5 and under_bound < under_fedavg - 0.3, (before, under_fedavg, under_bound)
