"""Lesson 06's figures: who holds which labels, accuracy per round, and what a server sees."""
import numpy as np

from ..errors import InvalidParameterError
from ..plotting import axes_or_new, finish_axes


def plot_label_split(counts, ax=None, title=None):
    """One stacked bar per client: how many records of each class it holds.

    Parameters
    ----------
    counts : array-like, shape (clients, classes)
        From :func:`.partition.label_counts`.
    """
    counts = np.asarray(counts)
    if counts.ndim != 2:
        raise InvalidParameterError(f"counts must be a (clients, classes) table, got shape {counts.shape}")
    import matplotlib

    ax = axes_or_new(ax)
    bottom = np.zeros(len(counts))
    colors = matplotlib.colormaps["tab10"]
    for label in range(counts.shape[1]):
        ax.bar(np.arange(len(counts)), counts[:, label], bottom=bottom, color=colors(label % 10), label=str(label))
        bottom += counts[:, label]
    ax.set_xlabel("client")
    ax.set_ylabel("records")
    ax.set_xticks(np.arange(len(counts)))
    ax = finish_axes(ax, title, ncols=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.get_legend().set_title("class", prop={"size": "small"})
    return ax


def plot_rounds(histories, ax=None, title=None):
    """The global model's test accuracy after each round, one line per run.

    Parameters
    ----------
    histories : mapping of str to History
        The legend shows each run's name, and its epsilon when it has one.
    """
    if not hasattr(histories, "items") or not histories:
        raise InvalidParameterError("histories must be a non-empty mapping {label: History}")
    ax = axes_or_new(ax, figsize=(7.0, 3.2))  # room on the right for the legend, outside the curves
    for label, history in histories.items():
        if history.epsilon is not None:
            label = f"{label} (eps={history.epsilon:.1f})"
        ax.plot(np.arange(len(history.accuracy)), history.accuracy, marker="o", ms=3, label=label)
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    return finish_axes(ax, title, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def plot_server_view(update, masked, modulus=2**32, axes=None):
    """What the server receives from one client: its weights under FedAvg, uniform noise under SecAgg.

    Parameters
    ----------
    update : array-like
        The client's weights, flattened, as a FedAvg server receives them.
    masked : array-like
        The same client's masked vector under secure aggregation (integers mod ``modulus``).
    axes : pair of matplotlib Axes, optional
    """
    update, masked = np.ravel(update).astype(float), np.ravel(masked).astype(float)
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, 2, figsize=(8.0, 2.8), dpi=100, layout="constrained")
    axes[0].hist(update, bins=60, color="tab:red")
    axes[0].set_title("FedAvg: the client's weights", fontsize="medium")
    axes[0].set_xlabel("weight")
    axes[1].hist(masked / modulus, bins=60, color="tab:blue")
    axes[1].set_title("SecAgg+: its masked vector", fontsize="medium")
    axes[1].set_xlabel(f"value / {modulus:.3g}")
    for ax in axes:
        ax.set_ylabel("count")
    return axes


def plot_defences(table, axes=None):
    """Each aggregator's clean accuracy per scenario (left) and the backdoor's success (right).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`.robust.compare_aggregators`: indexed by (aggregator, scenario), with
        ``accuracy`` and ``attack success`` columns.
    axes : pair of matplotlib Axes, optional
    """
    if not {"accuracy", "attack success"} <= set(getattr(table, "columns", ())) or table.index.nlevels != 2:
        raise InvalidParameterError("table must be compare_aggregators' frame: (aggregator, scenario) rows, "
                                    "'accuracy' and 'attack success' columns")
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, 2, figsize=(10.0, 3.2), dpi=100, layout="constrained")
    aggregators = list(dict.fromkeys(table.index.get_level_values(0)))
    x = np.arange(len(aggregators))
    for ax, column in zip(axes, ("accuracy", "attack success")):
        frame = table[column].unstack("scenario").reindex(aggregators).dropna(axis=1, how="all")
        width = 0.8 / max(1, frame.shape[1])
        for i, scenario in enumerate(frame.columns):
            ax.bar(x + (i - (frame.shape[1] - 1) / 2) * width, frame[scenario], width, label=scenario)
        ax.set_xticks(x, aggregators, rotation=20)
        ax.set_ylim(0, 1)
        ax.set_ylabel("clean test accuracy" if column == "accuracy" else "backdoor success rate")
    finish_axes(axes[0], "clean accuracy after the round", loc="lower left")
    finish_axes(axes[1], "triggered test images put in the target class", loc="upper right")
    return axes
