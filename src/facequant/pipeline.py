"""One job: align, load, export, quantize, evaluate and benchmark one variant, logging each stage as it ends."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facequant import tracking
from facequant.align import Aligned, align_images, cache_dir_for, ensure_aligned
from facequant.benchmark import machine_info, measure
from facequant.cache import atomic_path, key_of
from facequant.config import Settings
from facequant.data import LFW, Pair, calibration_images, load_lfw, pair_images
from facequant.evaluate import Verification, cosine_scores, embed, session, verification_metrics
from facequant.export import INPUT, OPSET, export_onnx
from facequant.models import load_model, preprocess
from facequant.plots import plot_roc, plot_score_histogram
from facequant.quantize import build_variant, variant_key

log = logging.getLogger(__name__)

FAR_NOTE = (
    "TAR@FAR is read off the pooled ROC; with n impostor pairs the smallest non-zero FAR is 1/n "
    "(3.3e-4 for LFW's 3000), so TAR@FAR=1e-4 allows zero false accepts."
)


def _artifacts(out: Path, data: EvalData, scores: np.ndarray, v: Verification, name: str) -> list[Path]:
    csv = out / "scores.csv"
    rows = "\n".join(f"{p.fold},{p.label},{sc:.8f}" for p, sc in zip(data.pairs, scores, strict=True))
    csv.write_text("fold,label,score\n" + rows + "\n")
    return [
        csv,
        plot_roc(scores, data.labels, f"ROC - {name}", out / "roc.png"),
        plot_score_histogram(
            scores, data.labels, v.threshold, f"Cosine similarity - {name}", out / "score_histogram.png"
        ),
    ]


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time a pipeline stage and log it as metric time_<name>_s when it ends."""
    log.info("stage %s", name)
    start = time.perf_counter()
    yield
    tracking.log_metrics({f"time_{name}_s": time.perf_counter() - start})


@dataclass(frozen=True)
class EvalData:
    """The evaluated pairs and their distinct images, whose aligned faces are in align_cache."""

    lfw: LFW
    pairs: tuple[Pair, ...]
    names: list[str]
    align_cache: Path

    @property
    def labels(self) -> np.ndarray:
        return np.array([p.label for p in self.pairs])

    @property
    def folds(self) -> np.ndarray:
        return np.array([p.fold for p in self.pairs])

    def faces(self, s: Settings, names: list[str] | None = None) -> Aligned:
        return align_images(self.lfw.images_dir, self.names if names is None else names, s.align, self.align_cache)


def run_job(s: Settings, config_yaml: str) -> dict[str, float]:
    """Run one variant as one MLflow run; returns its metrics. The run ends FAILED on any error."""
    tags = {
        "variant": s.variant_name,
        "is_baseline": str(s.quant.mode == "fp32").lower(),
        "git_commit": tracking.git_commit(),
        "model": s.model.name,
    }
    with tracking.job_run(s.mlflow, s.variant_name, tags):
        tracking.log_params(
            tracking.flatten(s.as_dict())
            | machine_info()
            | {"onnx.opset": OPSET, "quant.scheme": _scheme(s), "benchmark.graph_optimization": "ORT_ENABLE_ALL"}
        )
        tracking.log_text(config_yaml, "config.yaml")
        return _run(s)


def _load_data(s: Settings) -> tuple[EvalData, list[str]]:
    """Parse LFW and align (into the cache) every evaluated image; faces are loaded only when needed."""
    lfw = load_lfw(s.dataset)
    tracking.set_tags({"dataset_fingerprint": lfw.fingerprint, "far_note": FAR_NOTE})
    pairs = lfw.evaluated(s.dataset.folds)
    static = s.quant.mode == "static"
    calib_names = calibration_images(lfw, s.calibration.num_samples, s.calibration.seed) if static else []
    names = pair_images(pairs)
    data = EvalData(lfw, pairs, names, cache_dir_for(s.cache_dir, lfw.fingerprint, s.align))
    computed = ensure_aligned(lfw.images_dir, names, s.align, data.align_cache)
    tracking.log_metrics({"n_pairs": len(pairs), "n_images": len(names), "align_computed": computed})
    return data, calib_names


def _scores_path(model: Path, data: EvalData, s: Settings) -> Path:
    key = key_of(model.parent.name, model.name, data.lfw.fingerprint, asdict(s.align), s.dataset.folds)
    return s.cache_dir / "scores" / f"{key}.npz"


def _scores(model: Path, data: EvalData, s: Settings) -> tuple[np.ndarray, int, bool]:
    """Pair scores of a model file (cached by file, data, alignment and folds), the fallback count, cache hit."""
    path = _scores_path(model, data, s)
    if path.is_file():
        with np.load(path) as cached:
            return cached["scores"], int(cached["fallbacks"]), True
    aligned = data.faces(s)
    emb = embed(model, aligned.faces, s.model.preprocess, s.eval_batch_size)
    index = {name: i for i, name in enumerate(data.names)}
    left = np.array([index[p.left] for p in data.pairs])
    right = np.array([index[p.right] for p in data.pairs])
    scores = cosine_scores(emb, left, right)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, scores=scores, fallbacks=aligned.fallbacks)
    return scores, aligned.fallbacks, False


def _metrics(model: Path, scores: np.ndarray, data: EvalData) -> tuple[Verification, dict[str, float]]:
    v = verification_metrics(scores, data.labels, data.folds)
    return v, v.as_metrics() | {"size_mib": model.stat().st_size / 2**20}


def _run(s: Settings) -> dict[str, float]:
    with stage("align"):
        data, calib_names = _load_data(s)

    with stage("export"):
        net, info = load_model(s.model)
        tracking.log_params({f"model_info.{k}": v for k, v in asdict(info).items()})
        base_key = key_of(info.weights_sha256, OPSET)
        sample = preprocess(data.faces(s, data.names[:16]).faces, info.preprocess)
        fp32 = s.cache_dir / "onnx" / base_key / "fp32.onnx"
        tracking.log_metrics({"onnx_parity_max_abs_diff": export_onnx(net, info, fp32, sample)})
        del net

    with stage("quantize"):  # before the evaluation faces are loaded, to bound peak memory
        calib = s.calibration if s.quant.mode == "static" else None
        vkey = variant_key(base_key, s.quant, calib, key_of(data.lfw.fingerprint, asdict(s.align)))
        variant = build_variant(
            fp32,
            fp32.with_name(f"{s.quant.variant}-{vkey}.onnx"),
            s.quant,
            s.calibration,
            info.preprocess,
            lambda: data.faces(s, calib_names).faces,
            tuple(sample[:1].shape),
        )

    with stage("evaluate"):
        scores, fallbacks, cached = _scores(variant, data, s)
        v, metrics = _metrics(variant, scores, data)
        tracking.log_metrics(metrics | {"align_fallbacks": fallbacks, "eval_cached": float(cached)})
        if not _scores_path(fp32, data, s).is_file():
            log.info("no cached FP32 baseline for this model and data; computing it")
        base = _metrics(fp32, _scores(fp32, data, s)[0], data)[1]
        drops = {
            "accuracy_drop": base["accuracy"] - v.accuracy,
            "tar_far_1e-3_drop": base["tar_far_1e-3"] - v.tar_far[1e-3],
            "compression_ratio": base["size_mib"] / metrics["size_mib"],
        }
        tracking.log_metrics(drops)

    with stage("benchmark"):
        faces = data.faces(s, data.names[: s.benchmark.throughput_batch]).faces
        bench = measure(variant, preprocess(faces, info.preprocess), s.benchmark)
        tracking.log_metrics(bench)

    with stage("log_artifacts"), tempfile.TemporaryDirectory(prefix="facequant-artifacts-") as tmp:
        tracking.log_artifacts(_artifacts(Path(tmp), data, scores, v, s.variant_name))
        tracking.log_onnx_model(variant, sample[:1], session(variant).run(None, {INPUT: sample[:1]})[0])
    log.info(
        "%s: accuracy %.4f +- %.4f, drop %.4f, %.2f MiB, p50 %.2f ms",
        s.variant_name,
        v.accuracy,
        v.accuracy_std,
        drops["accuracy_drop"],
        metrics["size_mib"],
        bench["latency_p50_ms"],
    )
    return metrics | drops | bench


def _scheme(s: Settings) -> str:
    """U8S8-style name of the integer kernels the variant uses (activations, weights)."""
    short = {"QUInt8": "U8", "QInt8": "S8"}
    if s.quant.mode == "static":
        return short[s.quant.activation_type] + short[s.quant.weight_type]
    if s.quant.mode == "dynamic":
        return "U8" + short[s.quant.weight_type] + " (dynamic)"
    return "fp32"
