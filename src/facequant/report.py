"""Plots of a variant's verification scores: ROC on a log-FAR axis and genuine/impostor histograms."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


def plot_roc(scores: np.ndarray, labels: np.ndarray, title: str, out: Path) -> Path:
    """TAR against FAR, log FAR axis down to the resolution the impostor pairs allow."""
    fpr, tpr, _ = roc_curve(labels, scores)
    floor = 1.0 / max(1, int((labels == 0).sum()))
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.step(np.clip(fpr, floor, 1), tpr, where="post")
    ax.set_xscale("log")
    ax.set_xlim(floor, 1)
    ax.set_xlabel(f"FAR (log; resolution {floor:.1e})")
    ax.set_ylabel("TAR")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_score_histogram(scores: np.ndarray, labels: np.ndarray, threshold: float, title: str, out: Path) -> Path:
    """Genuine and impostor cosine-similarity histograms with the accuracy-maximising threshold."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    bins = np.linspace(min(-0.2, scores.min()), 1.0, 80)
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label="genuine")
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label="impostor")
    ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("pairs")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
