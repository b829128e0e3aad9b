"""matplotlib figures: one variant's ROC and score histogram, and the comparison plots of a report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


def _save(fig, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _roc_axes(ax, scores: np.ndarray, labels: np.ndarray, label: str | None = None) -> float:
    fpr, tpr, _ = roc_curve(labels, scores)
    floor = 1.0 / max(1, int((labels == 0).sum()))
    ax.step(np.clip(fpr, floor, 1), tpr, where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlim(floor, 1)
    ax.set_xlabel(f"FAR (log; resolution {floor:.1e})")
    ax.set_ylabel("TAR")
    ax.grid(True, which="both", alpha=0.3)
    return float(tpr[fpr <= floor].max(initial=0.0))


def _hist_axes(ax, scores: np.ndarray, labels: np.ndarray, threshold: float, title: str) -> None:
    bins = np.linspace(min(-0.2, scores.min()), 1.0, 80)
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label="genuine")
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label="impostor")
    ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("pairs")
    ax.set_title(title)
    ax.legend(fontsize=8)


def plot_roc(scores: np.ndarray, labels: np.ndarray, title: str, out: Path) -> Path:
    """TAR against FAR, log FAR axis down to the resolution the impostor pairs allow."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    low = _roc_axes(ax, scores, labels)
    ax.set_ylim(max(0.0, low - 0.05), 1.005)
    ax.set_title(title)
    return _save(fig, out)


def plot_score_histogram(scores: np.ndarray, labels: np.ndarray, threshold: float, title: str, out: Path) -> Path:
    """Genuine and impostor cosine-similarity histograms with the accuracy-maximising threshold."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    _hist_axes(ax, scores, labels, threshold, title)
    return _save(fig, out)


def plot_rocs(curves: dict[str, pd.DataFrame], out: Path) -> Path:
    """ROC curves of all variants on one log-FAR axis; curves maps name -> scores.csv rows."""
    fig, ax = plt.subplots(figsize=(7, 5))
    lows = [_roc_axes(ax, c.score.to_numpy(), c.label.to_numpy(), name) for name, c in curves.items()]
    ax.set_ylim(max(0.0, min(lows) - 0.05), 1.005)
    ax.set_title("ROC of every variant")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out)


def plot_histograms(curves: dict[str, pd.DataFrame], thresholds: dict[str, float], out: Path) -> Path:
    """Genuine/impostor histograms per variant, each with its threshold."""
    cols = min(3, len(curves))
    rows = -(-len(curves) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax, (name, c) in zip(axes.flat, curves.items(), strict=False):
        _hist_axes(ax, c.score.to_numpy(), c.label.to_numpy(), thresholds[name], name)
    for ax in list(axes.flat)[len(curves) :]:
        ax.axis("off")
    return _save(fig, out)


def plot_roc_points(curves: dict[str, tuple[np.ndarray, np.ndarray]], resolution: float, title: str, out: Path) -> Path:
    """ROC from (FAR, TAR) points, such as protocol=all's roc.csv, on a log-FAR axis down to the resolution."""
    fig, ax = plt.subplots(figsize=(7, 5))
    lows = []
    for name, (far, tar) in curves.items():
        keep = far >= resolution
        ax.plot(far[keep], tar[keep], label=name)
        lows.append(float(tar[keep].min(initial=1.0)))
    ax.set_xscale("log")
    ax.set_xlim(resolution, 1)
    ax.set_ylim(max(0.0, min(lows) - 0.05), 1.005)
    ax.set_xlabel(f"FAR (log; resolution {resolution:.1e})")
    ax.set_ylabel("TAR")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    if len(curves) > 1:
        ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out)


def plot_all_histogram(
    genuine: np.ndarray, impostor_counts: np.ndarray, thresholds: dict[float, float], title: str, out: Path
) -> Path:
    """Genuine and impostor score densities on a log axis, so the impostor tail that sets low-FAR thresholds shows,
    with the threshold of each FAR."""
    edges = np.linspace(-1, 1, 201)
    imp = impostor_counts.reshape(200, -1).sum(axis=1)
    gen = np.histogram(genuine, bins=edges)[0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    width = edges[1] - edges[0]
    ax.stairs(gen / gen.sum() / width, edges, label=f"genuine ({gen.sum():,})")
    ax.stairs(imp / imp.sum() / width, edges, label=f"impostor ({imp.sum():,})")
    for far, t in thresholds.items():
        ax.axvline(t, linestyle="--", linewidth=0.8, color="k", alpha=0.6)
        ax.annotate(f"FAR {far:g}", (t, 0.95), xycoords=("data", "axes fraction"), fontsize=7, rotation=90)
    ax.set_yscale("log")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density (log)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, out)


def plot_pareto(
    names: Sequence[str],
    accuracy: Sequence[float],
    latency_ms: Sequence[float],
    size_mib: Sequence[float],
    out: Path,
    ylabel: str = "10-fold accuracy",
    accuracy_err: np.ndarray | None = None,
    latency_err: np.ndarray | None = None,
) -> Path:
    """Accuracy against batch-1 latency and against size, one annotated point per variant; errors are (2, n)
    distances below and above each point (0 where no interval was logged), drawn as bars so noise shows as noise."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    panels = ((axes[0], latency_ms, "latency p50, batch 1 (ms)", latency_err), (axes[1], size_mib, "size (MiB)", None))
    for ax, xs, label, xerr in panels:
        ax.errorbar(xs, accuracy, yerr=accuracy_err, xerr=xerr, fmt="o", capsize=3, elinewidth=1)
        for name, x, y in zip(names, xs, accuracy, strict=True):
            ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(label)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    fig.suptitle("Accuracy against latency and size (up and left is better; bars: 95% intervals)")
    return _save(fig, out)


def plot_calibration_grid(grid: pd.DataFrame, out: Path) -> Path:
    """Accuracy drop (pt) of static variants: calibration method (rows) x num_samples (columns)."""
    fig, ax = plt.subplots(figsize=(1.6 * grid.shape[1] + 3, 0.8 * grid.shape[0] + 2))
    values = grid.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="RdYlGn_r", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
    ax.set_yticks(range(grid.shape[0]), list(grid.index))
    ax.set_xlabel("calibration.num_samples")
    ax.set_ylabel("calibration method")
    for (i, j), value in np.ndenumerate(values):
        ax.text(j, i, "n/a" if np.isnan(value) else f"{value:.2f}", ha="center", va="center")
    fig.colorbar(image, label="accuracy drop (pt)")
    ax.set_title("Static INT8 accuracy drop against FP32")
    return _save(fig, out)


def plot_drift_faces(faces: np.ndarray, names: Sequence[str], cosines: Sequence[float], title: str, out: Path) -> Path:
    """The aligned faces whose embeddings quantization turned most, each with its FP32-vs-variant cosine."""
    cols = 4
    rows = max(1, -(-len(faces) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.7 * rows), squeeze=False)
    for ax, face, name, cosine in zip(axes.flat, faces, names, cosines, strict=False):
        ax.imshow(face)
        ax.set_title(f"{Path(name).stem}\ncos {cosine:.4f}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title)
    return _save(fig, out)


def plot_sensitivity(table: pd.DataFrame, worst: pd.DataFrame, title: str, out: Path) -> Path:
    """SQNR of every quantized activation (against FP32, and of its own quantization) and weight along the FP32
    graph's order, the worst activations numbered: where along the depth the error enters and grows."""
    fig, ax = plt.subplots(figsize=(10, 5))
    acts, weights = table[table.kind == "activation"], table[table.kind == "weight"]
    ax.plot(acts.position, acts.sqnr_db, ".-", lw=0.8, label="activation vs FP32 (error accumulated)")
    ax.plot(acts.position, acts.local_sqnr_db, "o", ms=3, mfc="none", alpha=0.7, label="activation, its own QDQ")
    ax.plot(weights.position, weights.sqnr_db, "x", ms=4, alpha=0.6, label="weight (dequantized vs FP32)")
    ax.plot(worst.position, worst.sqnr_db, "o", ms=9, mfc="none", color="red", label="worst activations")
    for rank, row in enumerate(worst.itertuples(), start=1):
        ax.annotate(
            str(rank),
            (row.position, row.sqnr_db),
            color="red",
            fontsize=8,
            xytext=(0, -14),
            textcoords="offset points",
            ha="center",
        )
    names = "\n".join(
        f"{rank}. {row.node or row.tensor} ({row.sqnr_db:.1f} dB)"
        for rank, row in enumerate(worst.itertuples(), start=1)
    )
    ax.text(
        0.99,
        0.02,
        names,
        transform=ax.transAxes,
        fontsize=7,
        ha="right",
        va="bottom",
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
    )
    shown = np.concatenate([acts.sqnr_db, acts.local_sqnr_db, weights.sqnr_db])
    ax.set_ylim(0, 1.2 * float(np.percentile(shown, 95)))  # lossless requantizations (~300 dB) stay off the scale
    ax.set_xlabel("position in the FP32 graph (node index, topological order)")
    ax.set_ylabel("SQNR (dB, higher is better)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right", ncols=2)
    ax.set_title(title)
    return _save(fig, out)
