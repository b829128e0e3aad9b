"""One job: align, load, export, quantize, evaluate and benchmark one variant, logging each stage as it ends."""

from __future__ import annotations

import logging
import subprocess
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
from facequant.cache import key_of, read_json, write_json
from facequant.config import Settings
from facequant.data import LFW, Pair, calibration_images, load_lfw, pair_images
from facequant.evaluate import Verification, cosine_scores, embed, session, verification_metrics
from facequant.export import INPUT, OPSET, export_onnx
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
        "git_commit": git_commit(),
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


def _evaluate(model: Path, faces: np.ndarray, data: EvalData, s: Settings) -> tuple[np.ndarray, Verification, dict]:
    emb = embed(model, faces, s.model.preprocess, s.eval_batch_size)
    index = {name: i for i, name in enumerate(data.names)}
    left = np.array([index[p.left] for p in data.pairs])
    right = np.array([index[p.right] for p in data.pairs])
    scores = cosine_scores(emb, left, right)
    v = verification_metrics(scores, data.labels, data.folds)
    return scores, v, v.as_metrics() | {"size_mib": model.stat().st_size / 2**20}


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
        aligned = data.faces(s)
        tracking.log_metrics({"align_fallbacks": aligned.fallbacks})
        scores, v, metrics = _evaluate(variant, aligned.faces, data, s)
        tracking.log_metrics(metrics)
        base = _baseline(s, base_key, data, fp32, aligned.faces, metrics)
        drops = {
            "accuracy_drop": base["accuracy"] - v.accuracy,
            "tar_far_1e-3_drop": base["tar_far_1e-3"] - v.tar_far[1e-3],
            "compression_ratio": base["size_mib"] / metrics["size_mib"],
        }
        tracking.log_metrics(drops)

    with stage("benchmark"):
        inputs = preprocess(aligned.faces[: s.benchmark.throughput_batch], info.preprocess)
        del aligned
        bench = measure(variant, inputs, s.benchmark)
        tracking.log_metrics(bench)

    with stage("log_artifacts"), tempfile.TemporaryDirectory(prefix="facequant-artifacts-") as tmp:
        tracking.log_artifacts(_artifacts(Path(tmp), data.pairs, scores, v, s.variant_name))
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


def _baseline(s: Settings, base_key: str, data: EvalData, fp32: Path, faces: np.ndarray, metrics: dict) -> dict:
    """FP32 metrics of the same model, data, alignment and folds: this run's if it is FP32, else cached."""
    path = (
        s.cache_dir / "baselines" / f"{key_of(base_key, data.lfw.fingerprint, asdict(s.align), s.dataset.folds)}.json"
    )
    if s.quant.mode == "fp32":
        write_json(path, metrics)
    elif not path.is_file():
        log.info("no cached FP32 baseline for this model and data; computing it")
        write_json(path, _evaluate(fp32, faces, data, s)[2])
    return read_json(path)


def _scheme(s: Settings) -> str:
    """U8S8-style name of the integer kernels the variant uses (activations, weights)."""
    short = {"QUInt8": "U8", "QInt8": "S8"}
    if s.quant.mode == "static":
        return short[s.quant.activation_type] + short[s.quant.weight_type]
    if s.quant.mode == "dynamic":
        return "U8" + short[s.quant.weight_type] + " (dynamic)"
    return "fp32"
