"""One figure per application case, drawn from the result objects of the case functions.

Each returns its Figure, small (two panels side by side) as in :mod:`mlsec_lessons.plotting`.
"""
import numpy as np

from ..plotting import DPI

FIGSIZE = (9.0, 3.2)


def _figure(ncols=2, figsize=FIGSIZE):
    import matplotlib.pyplot as plt  # late: importing this module never picks a backend

    return plt.subplots(1, ncols, figsize=figsize, dpi=DPI, layout="constrained")


def plot_fraud(case, claimed_recall=0.95):
    """Left: precision-recall curves on the test split, with each model's operating points.
    Right: evasion rate of the detected frauds against the attacker's budget, with 95% intervals."""
    fig, (left, right) = _figure()
    for (name, (precision, recall)), color in zip(case.pr_curves.items(), ("C0", "C1")):
        left.plot(recall, precision, color=color, label=f"{name} (PR-AUC {case.pr_auc[name]:.2f})")
        for rule, marker in (("max F1", "o"), ("95% recall", "s")):
            op = case.operating[name][rule]
            left.plot(op.recall, op.precision, marker, color=color, markersize=6)
    for rule, marker in (("max F1", "o"), ("95% recall", "s")):  # legend entries for the two thresholds
        left.plot([], [], marker, color="k", markersize=5, label=f"threshold for {rule} on validation")
    left.axhline(case.base_rate, color="grey", linestyle=":", linewidth=1, label=f"base rate ({case.base_rate:.0%})")
    left.axvline(claimed_recall, color="red", linestyle="--", linewidth=1, label="the source's 95% detection")
    left.set(xlabel="recall (detection rate)", ylabel="precision", ylim=(-0.02, 1.02),
             title="precision and recall on the test split")
    for (name, ev), color in zip(case.evasion.items(), ("C0", "C1")):
        lo, hi = ev["ci"]
        right.errorbar(ev["eps"], ev["rate"], yerr=[ev["rate"] - lo, hi - ev["rate"]], color=color, marker="o",
                       markersize=4, capsize=2, label=f"{name} ({ev['n detected']} detected frauds)")
    right.axvline(case.config["train_eps"], color="grey", linestyle="--", linewidth=1, label="training budget")
    right.set(xlabel="attacker's budget eps (std. deviations, mutable features)", ylabel="frauds that evade",
              ylim=(-0.02, 1.02), title="white-box evasion at the max-F1 threshold")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize="x-small")
    return fig


def plot_healthcare(case, claimed_accuracy=0.995, fpr=0.01):
    """Left: held-out accuracy against epsilon, beside cross-validation and the claim.
    Right: LiRA's TPR at ``fpr`` against epsilon, with chance and the cap DP puts on any attack."""
    fig, (left, right) = _figure()
    table = case.to_frame()
    private = table[np.isfinite(table.index)]
    plain = table.loc[np.inf]
    left.plot(private.index, private["accuracy"], "o-", label="DP-SGD logistic regression")
    left.axhline(plain["accuracy"], color="C0", linestyle="--", linewidth=1, label="same recipe, no noise")
    left.axhline(case.cv["accuracy"].mean(), color="C2", linestyle="-.", linewidth=1,
                 label="standardised logistic regression, 10-fold CV")
    left.axhline(claimed_accuracy, color="red", linestyle=":", linewidth=1, label="the source's 99.5%")
    left.set(xscale="log", xlabel="epsilon (delta = 1e-5)", ylabel="accuracy on held-out patients",
             title="breast cancer: what privacy costs", ylim=(min(0.8, private["accuracy"].min() - 0.02), 1.005))
    column = f"tpr@{100 * fpr:g}%"
    right.plot(private.index, private[column], "o-", label="LiRA, DP-SGD (shadows trained with DP-SGD)")
    right.axhline(plain[column], color="C0", linestyle="--", linewidth=1, label="LiRA, no noise")
    right.axhline(fpr, color="grey", linestyle=":", linewidth=1, label="chance (TPR = FPR)")
    eps = np.geomspace(private.index.min() / 1.5, private.index.max() * 1.5, 50)
    from .healthcare import dp_tpr_bound

    right.plot(eps, [dp_tpr_bound(e, fpr, 1e-5) for e in eps], color="k", linewidth=1, label="DP cap on any attack")
    right.set(xscale="log", yscale="log", xlabel="epsilon (delta = 1e-5)", ylabel=f"TPR at {fpr:.0%} FPR",
              title="membership inference exposure")
    for ax in (left, right):
        ax.set_xticks(private.index, [f"{e:g}" for e in private.index])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize="x-small")
    return fig


def plot_patches(case, x, y, model_name="plain CNN", size=3, n_images=5):
    """Left: the patch and a few test digits wearing it, with the model's reading.
    Right: patch success against patch size for every model (random and best placement)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from ..models import predict_labels
    from .perception import apply_patch, placements

    fig = plt.figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1, 1.1])
    model, patch = case.models[model_name], case.patches[model_name][size]
    corners = placements(x.shape[1:], size)
    rng = np.random.default_rng(0)
    where = corners[rng.integers(0, len(corners), n_images)]
    patched = np.concatenate([apply_patch(x[i:i + 1], patch, c) for i, c in enumerate(where)])
    axes = left.subplots(2, n_images)
    pred_clean, pred_patched = predict_labels(model, x[:n_images]), predict_labels(model, patched)
    for i in range(n_images):
        axes[0, i].imshow(x[i, :, :, 0], cmap="gray_r", vmin=0, vmax=1)
        axes[0, i].set_title(f"{y[i]} -> {pred_clean[i]}", fontsize="small")
        axes[1, i].imshow(patched[i, :, :, 0], cmap="gray_r", vmin=0, vmax=1)
        axes[1, i].set_title(f"-> {pred_patched[i]}", fontsize="small",
                             color="red" if pred_patched[i] != y[i] else "black")
        row, col = where[i]
        axes[1, i].add_patch(Rectangle((col - 0.5, row - 0.5), size, size, fill=False, edgecolor="C3", linewidth=1.5))
    for ax in axes.ravel():
        ax.set(xticks=[], yticks=[])
    left.suptitle(f"{size}x{size} patch (red), {model_name}: true -> read", fontsize="medium")
    ax = right.subplots()
    sizes = case.config["sizes"]
    for name, color in zip(case.models, ("C0", "C1", "C2")):
        results = case.patch[name]
        ax.plot(sizes, [results[s]["adversarial"].random_placement for s in sizes], "o-", color=color,
                label=f"{name}, random place")
        ax.plot(sizes, [results[s]["adversarial"].best_placement for s in sizes], "s--", color=color,
                markersize=4, linewidth=1)
    noise = case.patch["plain CNN"]
    ax.plot(sizes, [noise[s]["random noise"].random_placement for s in sizes], "x:", color="grey",
            label="random-noise sticker, plain CNN")
    ax.set(xlabel="patch side (pixels of 8)", ylabel="attack success rate", xticks=sizes, ylim=(-0.02, 1.02),
           title="solid: random place, dashed: best place")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize="x-small", loc="upper right", bbox_to_anchor=(1.0, 0.9))
    return fig
