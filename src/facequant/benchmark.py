"""CPU latency and throughput of an ONNX model with ONNX Runtime, on real preprocessed faces."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from facequant import runtime
from facequant.config import BenchmarkConfig
from facequant.schema import Metric, Param


def _timed_runs(sess, name: str, batch: np.ndarray, warmup: int, iterations: int) -> np.ndarray:
    for _ in range(warmup):
        sess.run(None, {name: batch})
    times = np.empty(iterations)
    for i in range(iterations):
        start = time.perf_counter()
        sess.run(None, {name: batch})
        times[i] = time.perf_counter() - start
    return times


def measure(model_path: Path, inputs: np.ndarray, cfg: BenchmarkConfig) -> dict[Metric, float]:
    """Batch-1 latency (p50/p95/mean, ms) and batch-N throughput (images/s) with cfg.threads intra-op threads."""
    need = max(cfg.latency_batch, cfg.throughput_batch)
    if len(inputs) < need:
        inputs = np.concatenate([inputs] * (need // len(inputs) + 1))
    sess = runtime.session(model_path, threads=cfg.threads)
    name = sess.get_inputs()[0].name
    lat = _timed_runs(sess, name, inputs[: cfg.latency_batch], cfg.warmup, cfg.iterations) * 1000
    thr = _timed_runs(sess, name, inputs[: cfg.throughput_batch], min(cfg.warmup, 2), cfg.throughput_iterations)
    return {
        Metric.LATENCY_P50_MS: float(np.percentile(lat, 50)),
        Metric.LATENCY_P95_MS: float(np.percentile(lat, 95)),
        Metric.LATENCY_MEAN_MS: float(lat.mean()),
        Metric.THROUGHPUT_IPS: float(cfg.throughput_batch / np.median(thr)),
    }


ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "i8mm",
)


def machine_info() -> dict[str, str]:
    """CPU model, the ISA flags that decide INT8 speed (VNNI, AMX, ...), core count and library versions."""
    import os
    import platform
    from importlib.metadata import PackageNotFoundError, version

    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    info = {
        Param.CPU_MODEL: model,
        Param.CPU_ISA: ",".join(f for f in ISA_FLAGS if f in flags) or "unknown",
        "cpu.count": str(os.cpu_count()),
        "python": platform.python_version(),
    }
    for pkg in ("torch", "onnx", "onnxruntime", "facenet-pytorch", "mlflow", "hydra-core", "scikit-learn", "numpy"):
        try:
            info[f"version.{pkg}"] = version(pkg)
        except PackageNotFoundError:
            info[f"version.{pkg}"] = "absent"
    return info
