"""The files one job logs for its evaluation (pairs and all-pairs protocols) and its embedding drift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from facequant.evaluation.allpairs import BINS
from facequant.job.stages import EvalData, Evaluation, Paired
from facequant.job.stages_all import AllEvaluation
from facequant.plots import plot_all_histogram, plot_drift_faces, plot_roc, plot_roc_points, plot_score_histogram
from facequant.schema import (
    ALL_TAR_AT_FAR,
    DRIFT_CSV,
    DRIFT_PNG,
    GENUINE_CSV,
    HISTOGRAM_PNG,
    IMPOSTOR_HISTOGRAM_CSV,
    ROC_CSV,
    ROC_PNG,
    SCORES_CSV,
)


def drift_artifacts(out: Path, data: EvalData, paired: Paired, name: str) -> list[Path]:
    """Every image's FP32-vs-variant embedding cosine, and the faces that drifted most."""
    csv = out / DRIFT_CSV
    rows = "\n".join(f"{image},{cosine:.8f}" for image, cosine in zip(data.names, paired.cosines, strict=True))
    csv.write_text("image,cosine\n" + rows + "\n")
    worst = list(paired.worst)
    faces = data.faces_at(worst).faces
    names, cosines = [data.names[i] for i in worst], paired.cosines[worst]
    title = f"Most-drifted faces - {name} vs FP32"
    return [csv, plot_drift_faces(faces, names, cosines, title, out / DRIFT_PNG)]


def pairs_artifacts(out: Path, data: EvalData, evaluation: Evaluation, name: str) -> list[Path]:
    csv = out / SCORES_CSV
    rows = "\n".join(f"{p.fold},{p.label},{s:.8f}" for p, s in zip(data.pairs, evaluation.scores, strict=True))
    csv.write_text("fold,label,score\n" + rows + "\n")
    threshold = evaluation.verification.threshold
    return [
        csv,
        plot_roc(evaluation.scores, data.labels, f"ROC - {name}", out / ROC_PNG),
        plot_score_histogram(
            evaluation.scores, data.labels, threshold, f"Cosine similarity - {name}", out / HISTOGRAM_PNG
        ),
    ]


def all_artifacts(out: Path, data: EvalData, evaluation: AllEvaluation, name: str) -> list[Path]:
    """Genuine scores, the impostor histogram and the ROC points as CSVs (81M impostor scores are not an
    artifact), with the log-FAR ROC and the score histograms."""
    s = evaluation.scan
    left, right = s.genuine_pairs[:, 0], s.genuine_pairs[:, 1]
    names = np.array(data.names)
    genuine = out / GENUINE_CSV
    pd.DataFrame({"left": names[left], "right": names[right], "score": s.genuine}).to_csv(
        genuine, index=False, float_format="%.8f"
    )
    edges = np.linspace(-1, 1, BINS + 1)
    histogram = out / IMPOSTOR_HISTOGRAM_CSV
    pd.DataFrame({"low": edges[:-1], "high": edges[1:], "count": s.histogram}).to_csv(
        histogram, index=False, float_format="%.4f"
    )
    far, tar, threshold = s.roc()
    roc = out / ROC_CSV
    pd.DataFrame({"threshold": threshold, "far": far, "tar": tar}).to_csv(roc, index=False, float_format="%.9g")
    thresholds = {f: s.threshold(f) for f in ALL_TAR_AT_FAR if s.resolvable(f)}
    return [
        genuine,
        histogram,
        roc,
        plot_roc_points({name: (far, tar)}, 1.0 / s.n_impostor, f"ROC - {name}", out / ROC_PNG),
        plot_all_histogram(s.genuine, s.histogram, thresholds, f"Cosine similarity - {name}", out / HISTOGRAM_PNG),
    ]
