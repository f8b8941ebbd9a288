"""Federated learning on Flower: the data splits, the client's update, client-level DP accounting,
one small simulation with FedAvg, DP (server-side clipping, and client-side clipping through SecAgg+),
SecAgg+ and malicious clients, and the real SuperLink/SuperNode deployment."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flwr.supercore.privacy_accounting import GaussianPrivacyEvent, NeighboringRelation, PrivacyConfig, SamplingMethod
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from mlsec_lessons.data import load_digits
from mlsec_lessons.federated import attacks, fedavg, robust
from mlsec_lessons.federated.apps import run_simulation
from mlsec_lessons.federated.attacks import Attack
from mlsec_lessons.federated.partition import dirichlet_partition, iid_partition, label_counts, partition
from mlsec_lessons.federated.secagg import SecureDPRun, SecureRound
from mlsec_lessons.privacy import accounting

MLSEC = Path(sys.executable).with_name("mlsec")


# --------------------------------------------------------------------------- splits
@pytest.mark.parametrize("scheme", ["iid", "dirichlet"])
def test_every_record_goes_to_exactly_one_client(scheme):
    y = load_digits().y_train
    parts = partition(y, 10, scheme, alpha=0.3, seed=1)
    together = np.concatenate(parts)
    assert len(parts) == 10 and sorted(together.tolist()) == list(range(len(y)))
    assert min(len(p) for p in parts) >= 10


def test_dirichlet_skews_labels_and_alpha_sets_how_much():
    y = load_digits().y_train

    def top_class_share(parts):
        counts = label_counts(y, parts)
        return float(np.mean(counts.max(axis=1) / counts.sum(axis=1)))

    iid, mild, harsh = (top_class_share(p) for p in (iid_partition(len(y), 10), dirichlet_partition(y, 10, 10.0),
                                                     dirichlet_partition(y, 10, 0.1)))
    assert iid < 0.2 and iid < mild < harsh and harsh > 0.4, (iid, mild, harsh)


def test_splits_are_reproducible():
    y = load_digits().y_train
    assert all(np.array_equal(a, b) for a, b in zip(dirichlet_partition(y, 5, 0.5, seed=3),
                                                    dirichlet_partition(y, 5, 0.5, seed=3)))


@pytest.mark.parametrize("call, message", [
    (lambda y: partition(y, 10, "shards"), "unknown scheme 'shards'"),
    (lambda y: dirichlet_partition(y, 10, alpha=0), r"alpha must be in \(0, inf\)"),
    (lambda y: dirichlet_partition(y.reshape(-1, 1), 10), "one label per record"),
    (lambda y: iid_partition(len(y), 0), r"num_clients must be in \[1, inf\]"),
    (lambda y: iid_partition(5, 10), "5 records cannot give 10 clients"),
])
def test_bad_splits_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call(load_digits().y_train)


# --------------------------------------------------------------------------- settings and the client
@pytest.mark.parametrize("kwargs, message", [
    ({"scheme": "shards"}, "scheme must be"), ({"rounds": 0}, r"rounds must be in \[1, inf\]"),
    ({"learning_rate": -1}, r"learning_rate must be in \(0, inf\)"), ({"noise_multiplier": 0.0}, "noise_multiplier"),
    ({"clipping_norm": 0}, r"clipping_norm must be in \(0, inf\)"), ({"delta": 1.0}, "delta"),
])
def test_bad_experiments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fedavg.Experiment("bad", **kwargs)


def test_wrong_types_in_an_experiment_are_type_errors():
    with pytest.raises(TypeError, match="rounds must be an int"):
        fedavg.Experiment("bad", rounds=2.0)


def test_results_are_frozen_and_tabled():
    history = fedavg.History(fedavg.Experiment("h"), accuracy=[0.1, 0.5, 0.8], train_loss=[1.2, 0.7])
    with pytest.raises(AttributeError):
        history.epsilon = 1.0
    frame = history.to_frame()
    assert frame["accuracy"].tolist() == [0.1, 0.5, 0.8] and frame["train loss"].tolist()[1:] == [1.2, 0.7]


def test_a_seeded_dp_run_leaves_the_callers_numpy_generator_alone():
    from mlsec_lessons.reproducibility import seeded_numpy_global

    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    with seeded_numpy_global(0):
        np.random.rand(5)  # what Flower's noise would draw
    assert np.random.rand() == expected


def test_initial_weights_leave_the_callers_generators_alone():
    import random

    random.seed(5)
    np.random.seed(5)
    expected = random.random(), np.random.rand()
    random.seed(5)
    np.random.seed(5)
    first = fedavg.initial_weights(seed=3)
    assert (random.random(), np.random.rand()) == expected
    assert all(np.array_equal(a, b) for a, b in zip(first, fedavg.initial_weights(seed=3)))  # still seeded


def test_run_simulation_refuses_bad_jobs_before_starting_ray():
    with pytest.raises(ValueError, match="each with its own name"):
        run_simulation([fedavg.Experiment("a"), fedavg.Experiment("a")])
    with pytest.raises(ValueError, match=r"num_clients must be in \[2, inf\], got 1"):
        run_simulation(fedavg.Experiment("a"), num_clients=1)
    with pytest.raises(TypeError, match="num_clients must be an int"):
        run_simulation(fedavg.Experiment("a"), num_clients=2.0)


def test_client_update_trains_on_its_own_partition():
    start = fedavg.initial_weights(0)
    config = dict(fedavg.Experiment("x", scheme="dirichlet", local_epochs=1).client_config())
    weights, n, loss = fedavg.client_update(start, config, 2, 10)
    x, y = fedavg.client_data(2, 10, "dirichlet", 0.3, 0)
    assert n == len(y) and [w.shape for w in weights] == [w.shape for w in start]
    assert np.isfinite(loss) and any(not np.allclose(a, b) for a, b in zip(weights, start))
    again, _, _ = fedavg.client_update(start, config, 2, 10)
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(weights, again)), "the same seed must give the same update"


# --------------------------------------------------------------------------- client-level DP accounting
@pytest.mark.parametrize("noise, rounds", [(0.5, 5), (1.0, 5), (1.5, 20)])
def test_course_accountant_agrees_with_flowers_without_sampling(noise, rounds):
    # every client in every round: Flower's NO_AMPLIFICATION model is DP-SGD with sample rate 1
    flower = RdpAccountant(PrivacyConfig(1e-3, 10, NeighboringRelation.ADD_OR_REMOVE_ONE,
                                         SamplingMethod.NO_AMPLIFICATION))
    flower.compose(GaussianPrivacyEvent(noise, 10, 10), rounds)
    ours = accounting.epsilon(noise, 1.0, rounds, 1e-3)
    assert ours == pytest.approx(flower.get_epsilon(1e-3), rel=1e-6)


def test_course_accountant_agrees_with_flowers_under_poisson_sampling():
    flower = RdpAccountant(PrivacyConfig(1e-5, 1000, NeighboringRelation.ADD_OR_REMOVE_ONE, SamplingMethod.POISSON))
    flower.compose(GaussianPrivacyEvent(1.1, 50, 1000), 200)
    assert accounting.epsilon(1.1, 50 / 1000, 200, 1e-5) == pytest.approx(flower.get_epsilon(1e-5), rel=1e-6)


def test_secure_dp_run_needs_noise():
    with pytest.raises(ValueError, match="needs an experiment with a noise_multiplier"):
        SecureDPRun("no noise", experiment=fedavg.Experiment("x"))


def test_secure_dp_run_accounts_like_the_course():
    run = SecureDPRun("dp", experiment=fedavg.Experiment("x", rounds=7, noise_multiplier=0.8))
    assert run.accountant(10).get_epsilon(1e-3) == pytest.approx(accounting.epsilon(0.8, 1.0, 7, 1e-3), rel=1e-6)


def test_secagg_error_bound_shrinks_with_finer_quantisation():
    coarse, fine = SecureRound("a", quantization_range=2**16), SecureRound("b", quantization_range=2**22)
    sizes = [100, 200, 300]
    assert coarse.error_bound(sizes) == pytest.approx(3 * (16 / 2**16) / 0.6)
    assert fine.error_bound(sizes) == pytest.approx(coarse.error_bound(sizes) / 64)


# --------------------------------------------------------------------------- one small simulation
@pytest.fixture(scope="module")
def simulation():
    base = fedavg.Experiment("plain", scheme="iid", rounds=2, local_epochs=1)
    jobs = [base, fedavg.Experiment("dp", scheme="iid", rounds=2, local_epochs=1, noise_multiplier=1.0),
            SecureRound("secure", experiment=base, num_shares=3, reconstruction_threshold=2),
            SecureDPRun("secure-dp", experiment=fedavg.Experiment("s", scheme="iid", rounds=2, local_epochs=1,
                                                                  noise_multiplier=1.0),
                        num_shares=3, reconstruction_threshold=2),
            # almost no noise and a small clip: the model may move only as far as the clients clipped
            SecureDPRun("clip-only", experiment=fedavg.Experiment("c", scheme="iid", rounds=1, local_epochs=1,
                                                                  noise_multiplier=1e-6, clipping_norm=0.05),
                        num_shares=3, reconstruction_threshold=2)]
    # malicious clients, each job from the base model
    after = dict(scheme="iid", rounds=1, local_epochs=1, start_from="base", keep_replies=True)
    jobs += [fedavg.Experiment("base", scheme="iid", rounds=1, local_epochs=1),
             fedavg.Experiment("flip", attack=Attack("sign-flip", boost=4.0), **after),
             fedavg.Experiment("bounded", aggregator="norm-bound", clipping_norm=0.5,
                               attack=Attack("backdoor", epochs=1), **after)]
    return run_simulation(jobs, num_clients=3)


@pytest.mark.slow
def test_fedavg_learns(simulation):
    accuracy = simulation["plain"].accuracy
    assert len(accuracy) == 3 and accuracy[0] < 0.2 and accuracy[-1] > 0.6, accuracy


@pytest.mark.slow
def test_dp_run_reports_the_accounted_epsilon(simulation):
    history = simulation["dp"]
    assert history.epsilon == pytest.approx(accounting.epsilon(1.0, 1.0, 2, history.experiment.delta), rel=1e-6)
    # three clients, noise std 1.0 * clip / 3 on the average: far worse than without noise
    assert history.final_accuracy < simulation["plain"].final_accuracy - 0.2


@pytest.mark.slow
def test_secure_dp_run_reports_the_accounted_epsilon_and_hides_every_update(simulation):
    history = simulation["secure-dp"]
    assert len(history.accuracy) == 3
    assert history.epsilon == pytest.approx(accounting.epsilon(1.0, 1.0, 2, history.experiment.delta), rel=1e-6)
    assert history.final_accuracy < simulation["plain"].final_accuracy - 0.2
    # client-side clipping inside SecAgg+: the server never received one float array, in any round
    assert history.arrays_the_server_saw() == []
    for server_round in (1, 2):
        masked = history.masked_vectors(server_round)
        assert len(masked) == 3
        values = np.concatenate([a.ravel() for v in masked.values() for a in v[1:]]).astype(float)
        assert values.min() < 2**32 * 0.01 and values.max() > 2**32 * 0.99


@pytest.mark.slow
def test_clients_clip_their_updates_before_secagg(simulation):
    history = simulation["clip-only"]
    start = fedavg.initial_weights(history.experiment.seed)
    moved = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(history.weights, start)))
    unclipped = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(simulation["plain"].weights, start)))
    # the average of updates clipped to 0.05 is at most 0.05 long (plus SecAgg+'s rounding), while
    # an unclipped FedAvg run moves much further
    assert 0.5 * 0.05 < moved <= 0.05 * 1.05, moved
    assert unclipped > 10 * 0.05, unclipped


@pytest.mark.slow
def test_secure_aggregate_matches_plain_fedavg_within_quantisation(simulation):
    result = simulation["secure"]
    sizes = [len(fedavg.client_data(i, 3, "iid", 0.3, 0)[1]) for i in range(3)]
    assert 0 < result.max_abs_difference <= result.round.error_bound(sizes), (
        result.max_abs_difference, result.round.error_bound(sizes))
    assert abs(result.secure_accuracy - result.plain.accuracy[1]) <= 0.01


@pytest.mark.slow
def test_secagg_server_sees_only_masked_vectors(simulation):
    result = simulation["secure"]
    assert result.arrays_the_server_saw() == []
    updates, masked = result.client_updates(), result.masked_vectors()
    assert len(updates) == len(masked) == 3
    for update in updates.values():
        flat = np.concatenate([a.ravel() for a in update])
        for vector in masked.values():
            values = np.concatenate([a.ravel() for a in vector[1:]]).astype(float)
            # masked integers spread over the whole of Z_(2^32), unrelated to any client's weights
            assert abs(np.corrcoef(flat, values)[0, 1]) < 0.05
            assert values.min() < 2**32 * 0.01 and values.max() > 2**32 * 0.99


@pytest.mark.slow
def test_a_malicious_client_attacks_inside_the_flower_simulation(simulation):
    results = simulation
    start = results["base"].weights
    flip = {r.partition_id: r for r in results["flip"].received[1]}
    assert attacks.update_norm(flip[0].weights, start) > 3 * attacks.update_norm(flip[1].weights, start)
    bounded = results["bounded"]
    assert attacks.update_norm(bounded.received[1][0].weights, start) > 0  # what arrived, before clipping
    again = robust.aggregate(robust.make_aggregator("norm-bound", 3, clipping_norm=0.5), bounded.received[1], start)
    assert max(np.abs(a - b).max() for a, b in zip(again, bounded.weights)) < 1e-6  # the simulation's aggregate
    assert attacks.update_norm(bounded.weights, start) <= 0.5 + 1e-5
    assert len(bounded.attack_success) == 2


# --------------------------------------------------------------------------- the real deployment
def test_print_commands_lists_one_superlink_and_a_supernode_per_client():
    out = subprocess.run([str(MLSEC), "federated", "--clients", "3", "--print-commands"],
                         capture_output=True, text=True, timeout=60)
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and "flower-superlink" in lines[0]
    assert sum("flower-supernode" in line for line in lines) == 3 and "partition-id=2 num-partitions=3" in out.stdout


def test_bad_deployment_arguments_are_a_usage_error():
    out = subprocess.run([str(MLSEC), "federated", "--clients", "1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "num_clients must be in [2, 50], got 1" in out.stderr


@pytest.mark.slow
def test_deployment_runs_fedavg_across_processes():
    out = subprocess.run([str(MLSEC), "federated", "--clients", "2", "--rounds", "1"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:]
    line = next(line for line in out.stdout.splitlines() if "global test accuracy after each round" in line)
    final = float(line.rsplit(",", 1)[-1])
    assert final > 0.5, line
