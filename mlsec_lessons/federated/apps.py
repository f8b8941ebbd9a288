"""The course's Flower apps and a quiet simulation runner.

``client_app`` trains on this node's part of digits (:func:`.fedavg.client_train`); its
:func:`.secagg.secagg_router` mod sends SecAgg+ rounds through Flower's ``secaggplus_mod``.
:func:`run_simulation` runs a list of jobs (:class:`.fedavg.Experiment` or
:class:`.secagg.SecureRound`) in one Flower simulation, so Ray starts once for all of them.

The same ``client_app``, with ``server_app``, also runs as a real deployment: a SuperLink and
SuperNodes as separate processes on 127.0.0.1 (``make federated``; see :mod:`.deployment`).
"""
import logging
import os
import time

from flwr.app import Context
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from ..errors import InvalidParameterError, RunError
from ..validation import check_int
from . import fedavg
from .secagg import secagg_router

client_app = ClientApp(mods=[secagg_router])
client_app.train()(fedavg.client_train)


def make_server_app(jobs, num_clients, results):
    """A ``ServerApp`` that runs ``jobs`` in order and puts each one's result in ``results``.

    A job with a ``start_from`` starts from the final weights of that earlier job.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        evaluate = fedavg.make_test_set_evaluator()
        for job in jobs:
            after = getattr(job, "start_from", None)
            start = {"start": results[after].weights} if after else {}
            results[job.name] = job.run(grid, context, num_clients, evaluate, **start)

    return app


# what `flwr run` loads in a deployment: one FedAvg experiment, set by the run config
server_app = ServerApp()


@server_app.main()
def deployed_main(grid: Grid, context: Context) -> None:
    config = context.run_config
    experiment = fedavg.Experiment(name="deployment", scheme=str(config.get("scheme", "dirichlet")),
                                   alpha=float(config.get("alpha", 0.3)),
                                   rounds=int(config.get("num-server-rounds", 3)))
    history = experiment.run(grid, context, int(config.get("num-clients", 10)))
    logging.getLogger("flwr").warning("global test accuracy after each round: %s",
                                       ", ".join(f"{a:.3f}" for a in history.accuracy))


def backend_config(num_cpus=None):
    """Ray settings: one CPU per client worker, and Ray's own logs kept out of the notebook."""
    num_cpus = num_cpus or os.cpu_count() or 1
    return {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": num_cpus, "log_to_driver": False, "logging_level": logging.ERROR,
                          "include_dashboard": False}}


def run_simulation(jobs, num_clients=10, num_cpus=None, verbose=False):
    """Run ``jobs`` in one Flower simulation with ``num_clients`` SuperNodes.

    Parameters
    ----------
    jobs : Experiment, SecureRound, or a list of them
        Each needs a distinct ``name``; an Experiment's ``start_from`` must name an earlier one.
    num_clients : int, default=10
    num_cpus : int, optional
        CPUs Ray may use (default: all); each client worker takes one.
    verbose : bool, default=False
        Show Flower's INFO log (a dozen lines a round).

    Returns
    -------
    dict
        ``{job.name: result}``, plus ``"_seconds"``: the wall time of the whole simulation,
        Ray's start-up included.
    """
    from flwr.simulation import run_simulation as flower_run_simulation

    jobs = [jobs] if not isinstance(jobs, (list, tuple)) else list(jobs)
    names = [job.name for job in jobs]
    if not names or len(set(names)) != len(names):
        raise InvalidParameterError(f"give at least one job, each with its own name; got {names}")
    for i, job in enumerate(jobs):
        after = getattr(job, "start_from", None)
        if after is not None and after not in names[:i]:
            raise InvalidParameterError(f"job {job.name!r} starts from {after!r}, which is not an earlier job")
    num_clients = check_int(num_clients, "num_clients", min_value=2)
    results = {}
    start = time.perf_counter()
    with quiet_flower(verbose):
        flower_run_simulation(server_app=make_server_app(jobs, num_clients, results), client_app=client_app,
                              num_supernodes=num_clients, backend_config=backend_config(num_cpus))
    missing = [n for n in names if n not in results]
    if missing:
        raise RunError(f"the simulation ended without finishing {missing}; rerun with verbose=True "
                       "to see Flower's log")
    results["_seconds"] = time.perf_counter() - start
    return results


class quiet_flower:
    """Keep Flower's and Ray's INFO logs (a dozen lines per round) out of the notebook."""

    def __init__(self, verbose=False):
        self.verbose = verbose

    def __enter__(self):
        # Ray's workers inherit this environment: keep TensorFlow's C++ banners out of them too
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # silences a FutureWarning
        self.saved = {name: logging.getLogger(name).level for name in ("flwr", "ray")}
        if not self.verbose:
            for name in self.saved:
                logging.getLogger(name).setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc):
        for name, level in self.saved.items():
            logging.getLogger(name).setLevel(level)
        return False
