"""Flower's simulation engine: Ray's start-up on its own, a FedAvg round, a SecAgg+ round beside a plain
one (same clients, same start, same run), and the numpy masking walkthrough beside a plain sum.

Lesson 06 spends most of its time starting Ray, so that cost is measured separately: bare Ray
(``ray.init``, two actors, TensorFlow imported in each) and inside a Flower simulation (its wall time
minus the time of the rounds it ran).
"""
import time

import numpy as np

NUM_CLIENTS = 10


def _ray_startup():
    import os
    import sys

    import ray

    from mlsec_lessons.federated.apps import backend_config, quiet_flower

    with quiet_flower():
        steps, start = [], time.perf_counter()
        init_args = backend_config()["init_args"]
        ray.init(runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}}, **init_args)
        steps.append(("ray.init", time.perf_counter() - start))

        @ray.remote(num_cpus=1)
        class Worker:
            def ready(self):
                return True

            def import_tensorflow(self):
                import keras  # noqa: F401
                import tensorflow  # noqa: F401

                return True

        t = time.perf_counter()
        workers = [Worker.remote() for _ in range(init_args["num_cpus"])]
        ray.get([w.ready.remote() for w in workers])
        steps.append((f"{len(workers)} actors ready", time.perf_counter() - t))
        t = time.perf_counter()
        ray.get([w.import_tensorflow.remote() for w in workers])
        steps.append(("TensorFlow imported in each actor", time.perf_counter() - t))
        t = time.perf_counter()
        ray.shutdown()
        steps.append(("ray.shutdown", time.perf_counter() - t))
    return steps


def run():
    import mlsec_lessons

    mlsec_lessons.quiet()
    from mlsec_lessons.federated import fedavg, masking
    from mlsec_lessons.federated.apps import run_simulation
    from mlsec_lessons.federated.secagg import SecureRound

    rows = [[f"bare Ray: {name}", f"{s:.2f}", ""] for name, s in _ray_startup()]

    warm_up = fedavg.Experiment("warm-up", rounds=1)
    five = fedavg.Experiment("five rounds", rounds=5)
    secure = SecureRound("secagg", experiment=fedavg.Experiment("secagg", scheme="iid"), num_shares=5,
                         reconstruction_threshold=3)
    results = run_simulation([warm_up, five, secure], num_clients=NUM_CLIENTS)
    per_round = results[five.name].seconds / five.rounds
    jobs = results[warm_up.name].seconds + results[five.name].seconds + results[secure.name].plain.seconds
    startup = results["_seconds"] - jobs - results[secure.name].secure_seconds
    first_round_extra = results[warm_up.name].seconds - per_round
    plain_round = results[secure.name].plain.seconds
    rows += [
        ["Flower simulation: Ray and the SuperNodes start, stop", f"{startup:.2f}", ""],
        ["Flower simulation: first round's extra (actors import TensorFlow, trace)", f"{first_round_extra:.2f}", ""],
        [f"FedAvg round, {NUM_CLIENTS} clients (peer)", f"{per_round:.2f}", "1.0"],
        ["the same round in the clear, from SecureRound", f"{plain_round:.2f}", f"{plain_round / per_round:.2f}"],
        ["the same round through SecAgg+ (4 message rounds)", f"{results[secure.name].secure_seconds:.2f}",
         f"{results[secure.name].secure_seconds / per_round:.2f}"],
    ]

    # the walkthrough: 10 clients' small_cnn-sized vectors, against summing them in the clear
    rng = np.random.default_rng(0)
    size = sum(w.size for w in fedavg.initial_weights(0))
    vectors = rng.integers(0, 2**16, size=(NUM_CLIENTS, size))
    t = time.perf_counter()
    for _ in range(20):
        vectors.sum(axis=0)
    plain_sum = (time.perf_counter() - t) / 20
    for label, dropouts in [("no dropouts", ()), ("2 dropouts", (3, 7))]:
        t = time.perf_counter()
        masking.simulate_round(vectors, threshold=5, dropouts=dropouts, seed=0)
        seconds = time.perf_counter() - t
        rows.append([f"numpy masking walkthrough, {NUM_CLIENTS} clients x {size} weights, {label}",
                     f"{seconds:.3f}", f"{seconds / plain_sum:.0f}x a plain sum ({plain_sum * 1e3:.2f} ms)"])
    return {
        "title": "Flower simulation: Ray start-up, FedAvg and SecAgg+ rounds, the masking walkthrough",
        "columns": ["what", "seconds", "ratio to one FedAvg round"],
        "rows": rows,
        "notes": (f"Lesson 06's settings: {NUM_CLIENTS} SuperNodes on digits, small_cnn, 2 local epochs, one Ray "
                  "worker per CPU. Bare Ray is timed on its own first; the Flower rows come from one simulation "
                  "whose start-up is its wall time minus the rounds it ran. The SecAgg+ round and its plain twin "
                  "start from the same weights with the same client seeds; the walkthrough row's ratio is to a "
                  "plain numpy sum of the same vectors."),
    }
