"""One job: align, load, export, quantize, evaluate and benchmark one variant, logging each stage as it ends."""

from __future__ import annotations

import logging
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from facequant import tracking
from facequant.align import align_images, cache_dir_for
from facequant.benchmark import machine_info, measure
from facequant.cache import key_of, read_json, write_json
from facequant.config import Settings
from facequant.data import LFW, Pair, calibration_images, load_lfw, pair_images
from facequant.evaluate import Verification, cosine_scores, embed, verification_metrics
from facequant.export import OPSET, export_onnx
from facequant.models import load_model, preprocess
from facequant.quantize import build_variant, variant_key
from facequant.report import plot_roc, plot_score_histogram

log = logging.getLogger(__name__)

FAR_NOTE = (
    "TAR@FAR is read off the pooled ROC; with n impostor pairs the smallest non-zero FAR is 1/n "
    "(3.3e-4 for LFW's 3000), so TAR@FAR=1e-4 allows zero false accepts."
)


def git_commit() -> str:
    """HEAD of the checkout this code runs from, with '-dirty' if it has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty else "")


def _scores(model: Path, faces: np.ndarray, names: list[str], pairs: tuple[Pair, ...], s: Settings) -> np.ndarray:
    emb = embed(model, faces, s.model.preprocess, s.eval_batch_size)
    index = {name: i for i, name in enumerate(names)}
    left = np.array([index[p.left] for p in pairs])
    right = np.array([index[p.right] for p in pairs])
    return cosine_scores(emb, left, right)


def _artifacts(out: Path, pairs: tuple[Pair, ...], scores: np.ndarray, v: Verification, name: str) -> list[Path]:
    labels = np.array([p.label for p in pairs])
    csv = out / "scores.csv"
    rows = "\n".join(f"{p.fold},{p.label},{sc:.8f}" for p, sc in zip(pairs, scores, strict=True))
    csv.write_text("fold,label,score\n" + rows + "\n")
    return [
        csv,
        plot_roc(scores, labels, f"ROC - {name}", out / "roc.png"),
        plot_score_histogram(scores, labels, v.threshold, f"Cosine similarity - {name}", out / "score_histogram.png"),
    ]


def run_job(s: Settings, config_yaml: str) -> dict[str, float]:
    """Run one variant as one MLflow run; returns its metrics. The run ends FAILED on any error."""
    tags = {
        "variant": s.variant_name,
        "is_baseline": str(s.quant.mode == "fp32").lower(),
        "git_commit": git_commit(),
        "model": s.model.name,
    }
    with tracking.job_run(s.mlflow, s.variant_name, tags):
        tracking.log_params(tracking.flatten(s.as_dict()) | machine_info() | {"onnx.opset": OPSET})
        tracking.log_text(config_yaml, "config.yaml")
        return _run(s)


def _run(s: Settings) -> dict[str, float]:
    lfw: LFW = load_lfw(s.dataset)
    pairs = lfw.evaluated(s.dataset.folds)
    tracking.set_tags({"dataset_fingerprint": lfw.fingerprint, "far_note": FAR_NOTE})
    calib_names = (
        calibration_images(lfw, s.calibration.num_samples, s.calibration.seed) if s.quant.mode == "static" else []
    )
    names = pair_images(pairs)
    align_cache = cache_dir_for(s.cache_dir, lfw.fingerprint, s.align)
    aligned = align_images(lfw.images_dir, names, s.align, align_cache)
    tracking.log_metrics(
        {
            "n_pairs": len(pairs),
            "n_images": len(names),
            "align_fallbacks": aligned.fallbacks,
            "align_computed": aligned.computed,
        }
    )

    net, info = load_model(s.model)
    tracking.log_params({f"model_info.{k}": v for k, v in asdict(info).items()})
    base_key = key_of(info.weights_sha256, OPSET)
    model_dir = s.cache_dir / "onnx" / base_key
    sample = preprocess(aligned.faces[:16], info.preprocess)
    fp32 = model_dir / "fp32.onnx"
    tracking.log_metrics({"onnx_parity_max_abs_diff": export_onnx(net, info, fp32, sample)})
    del net

    vkey = variant_key(
        base_key, s.quant, s.calibration if s.quant.mode == "static" else None, key_of(lfw.fingerprint, asdict(s.align))
    )
    variant = build_variant(
        fp32,
        model_dir / f"{s.quant.variant}-{vkey}.onnx",
        s.quant,
        s.calibration,
        info.preprocess,
        lambda: align_images(lfw.images_dir, calib_names, s.align, align_cache).faces,
        tuple(sample[:1].shape),
    )

    labels = np.array([p.label for p in pairs])
    folds = np.array([p.fold for p in pairs])

    def evaluate(model: Path) -> tuple[np.ndarray, Verification, dict[str, float]]:
        scores = _scores(model, aligned.faces, names, pairs, s)
        v = verification_metrics(scores, labels, folds)
        return scores, v, v.as_metrics() | {"size_mib": model.stat().st_size / 2**20}

    scores, v, metrics = evaluate(variant)
    tracking.log_metrics(metrics)
    baseline = s.cache_dir / "baselines" / f"{key_of(base_key, lfw.fingerprint, asdict(s.align), s.dataset.folds)}.json"
    if s.quant.mode == "fp32":
        write_json(baseline, metrics)
    elif not baseline.is_file():
        log.info("no cached FP32 baseline for this model and data; computing it")
        write_json(baseline, evaluate(fp32)[2])
    base = read_json(baseline)
    drops = {
        "accuracy_drop": base["accuracy"] - v.accuracy,
        "tar_far_1e-3_drop": base["tar_far_1e-3"] - v.tar_far[1e-3],
        "compression_ratio": base["size_mib"] / metrics["size_mib"],
    }
    tracking.log_metrics(drops)

    bench = measure(variant, preprocess(aligned.faces[: s.benchmark.throughput_batch], info.preprocess), s.benchmark)
    tracking.log_metrics(bench)
    tracking.log_params(
        {
            "benchmark.graph_optimization": "ORT_ENABLE_ALL",
            "benchmark.provider": "CPUExecutionProvider",
            "quant.scheme": _scheme(s),
        }
    )

    with tempfile.TemporaryDirectory(prefix="facequant-artifacts-") as tmp:
        tracking.log_artifacts(_artifacts(Path(tmp), pairs, scores, v, s.variant_name))
    tracking.log_onnx_model(variant, sample[:1], embed(variant, aligned.faces[:1], info.preprocess))
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
