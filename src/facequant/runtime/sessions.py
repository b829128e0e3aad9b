"""The inference runtimes: ONNX Runtime or OpenVINO sessions over one ONNX file, preprocessing, batched embedding.

It imports neither torch nor h5py, and OpenVINO only when asked for, so each stage loads only what it runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from facequant.config.running import RuntimeConfig
from facequant.config.target import Arithmetic
from facequant.machine import job_cpus
from facequant.onnxmodel import InputSpec
from facequant.target.emulate import TargetEmulator

log = logging.getLogger(__name__)

GRAPH_OPTIMIZATION = "ORT_ENABLE_ALL"
ORT = RuntimeConfig()  # the reference runtime of every drop and speed-up


class RuntimeFailure(RuntimeError):
    """The runtime cannot run the model as configured."""


def name(cfg: RuntimeConfig = ORT, arithmetic: Arithmetic = "host") -> str:
    """The runtime, its version and precision: part of every cached result it computes."""
    if arithmetic != "host":
        return f"onnxruntime {ort.__version__} emulating {arithmetic} int8"
    if cfg.name == "ort":
        return f"onnxruntime {ort.__version__}"  # unchanged since before OpenVINO, so ORT caches stay valid
    import openvino as ov

    return f"openvino {ov.get_version().split('-')[0]} {cfg.precision}"


def preprocess(faces: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 NHWC RGB faces -> the model's float32 input, in its channel order and layout.

    fixed: (x - mean) / std, per channel in the model's order (facenet-pytorch: 127.5, 128); per_image: Sandberg's
    prewhiten, per-image mean and population std, the std floored at 1/sqrt(n).
    """
    x = faces.astype(np.float32).transpose(0, 3, 1, 2)
    if spec.channel_order == "BGR":
        x = x[:, ::-1]
    if spec.preprocess == "fixed":
        per_channel = (1, len(spec.mean), 1, 1)
        mean, std = (np.array(v, np.float32).reshape(per_channel) for v in (spec.mean, spec.std))
        x = (x - mean) / std
    elif spec.preprocess == "per_image":
        axes = (1, 2, 3)
        mean = x.mean(axis=axes, keepdims=True)
        std = x.std(axis=axes, keepdims=True)
        floor = 1.0 / np.sqrt(x[0].size)
        x = ((x - mean) / np.maximum(std, floor)).astype(np.float32)
    else:
        raise ValueError(f"unknown preprocessing {spec.preprocess!r}; choose fixed or per_image")
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if spec.layout == "NHWC" else x)


class Session(Protocol):
    """A loaded single-input model: run() returns its embedding output."""

    precision: str  # what the engine reports it computes in

    def run(self, inputs: np.ndarray) -> np.ndarray: ...


def session(model_path: Path, threads: int = 0, level: str = GRAPH_OPTIMIZATION) -> ort.InferenceSession:
    """ONNX Runtime CPU session at ORT_ENABLE_ALL (ENABLE_EXTENDED makes INT8 QDQ models ~1.5x slower); at
    ORT_DISABLE_ALL a QDQ model runs its QuantizeLinear/DequantizeLinear pairs in float, as written."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, inputs: np.ndarray, output: str | None = None) -> np.ndarray:
    """The named output (the first if None) of a single-input ONNX Runtime session."""
    return sess.run(None if output is None else [output], {sess.get_inputs()[0].name: inputs})[0]


@dataclass
class OrtSession:
    sess: ort.InferenceSession
    precision: str = "f32"
    output: str | None = None

    def run(self, inputs: np.ndarray) -> np.ndarray:
        return run(self.sess, inputs, self.output)


@dataclass
class OpenVinoSession:
    request: object  # openvino.InferRequest, reused so timing sees inference, not request set-up
    precision: str
    output: object  # the compiled model's output port of the embedding

    def run(self, inputs: np.ndarray) -> np.ndarray:
        self.request.infer({0: inputs})
        return self.request.get_tensor(self.output).data.copy()  # the request reuses its output buffer


def _openvino(model_path: Path, cfg: RuntimeConfig, threads: int, output: str | None) -> OpenVinoSession:
    """Compile the ONNX file on OpenVINO's CPU plugin with the precision set explicitly, then check it took."""
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": cfg.precision, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(str(model_path), "CPU", config)
    effective = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # "f32" or "bf16"
    if effective != cfg.precision:
        raise RuntimeFailure(
            f"OpenVINO compiled {model_path.name} in {effective}, not the requested runtime.precision={cfg.precision}; "
            "this CPU plugin does not support it, use runtime.precision=f32"
        )
    port = compiled.output(0 if output is None else output)
    return OpenVinoSession(compiled.create_infer_request(), effective, port)


@dataclass
class EmulatedSession:
    """A static QDQ model run under a target's arithmetic on any host (TargetEmulator): exact int32 accumulation,
    or AVX2's saturating 16-bit pair sums."""

    emulator: TargetEmulator
    index: int  # of the embedding among the graph's outputs
    precision: str = "f32"

    def run(self, inputs: np.ndarray) -> np.ndarray:
        return self.emulator.run(inputs).outputs[self.index]


def _emulated(model_path: Path, arithmetic: Arithmetic, threads: int, output: str | None) -> Session:
    if arithmetic == "exact":  # the QDQ graph in float is exact up to rounding: no rewrite needed
        return OrtSession(session(model_path, threads, level="ORT_DISABLE_ALL"), output=output)
    emulator = TargetEmulator(model_path, "avx2", threads or None)  # loads the model once
    return EmulatedSession(emulator, emulator.outputs.index(output or emulator.outputs[0]))


def open_session(
    model_path: Path,
    cfg: RuntimeConfig = ORT,
    threads: int = 0,
    output: str | None = None,
    arithmetic: Arithmetic = "host",
) -> Session:
    """A session of the configured runtime that returns the named output (the first if None); threads=0 lets the
    runtime use every core. Under another arithmetic than the host's, ONNX Runtime emulates the target's."""
    if arithmetic != "host":
        return _emulated(model_path, arithmetic, threads, output)
    if cfg.name == "openvino":
        return _openvino(model_path, cfg, threads, output)
    return OrtSession(session(model_path, threads), output=output)


class Faces(Protocol):
    """uint8 NHWC RGB faces that embed slices batch by batch: an array, or faces read from a cache as asked for."""

    def __len__(self) -> int: ...

    def __getitem__(self, part: slice) -> np.ndarray: ...


# batch_size=None: each candidate is timed twice on the first faces, then the fastest embeds the rest. Measured on a
# shared 2-core EPYC (docs/runtimes-and-speed.md), the fastest was 8 to 32 and 64 up to 1.6x slower, but which one
# depends on the host's caches, threads and load, so it is timed on the real work: no embedding is computed twice.
PROBE = (8, 16, 32, 64, 64, 32, 16, 8)


@dataclass
class BatchPlan:
    """Faces per inference call: the given batch size, or the probe's candidates and then the fastest of them."""

    fixed: int | None
    rates: dict[int, float] = field(default_factory=dict)  # the best images/s seen at each batch size

    def size(self, call: int) -> int:
        if self.fixed:
            return self.fixed
        return PROBE[call] if call < len(PROBE) else self.best

    def record(self, size: int, seconds: float) -> None:
        """A call's rate; only at the candidates: a short last batch is not a size to choose."""
        if size in PROBE:
            self.rates[size] = max(self.rates.get(size, 0.0), size / max(seconds, 1e-9))

    @property
    def best(self) -> int:
        return self.fixed or max(self.rates, key=self.rates.__getitem__)


def _prefetched(faces: Faces, plan: BatchPlan, spec: InputSpec, flip: bool) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Each batch's size and model inputs (and its mirror image's, with flip), read and preprocessed one batch
    ahead in a background thread, so that reading the next faces overlaps inference on these."""

    def load(start: int, stop: int) -> list[np.ndarray]:
        batch = np.asarray(faces[start:stop])
        return [preprocess(batch, spec)] + ([preprocess(np.ascontiguousarray(batch[:, :, ::-1]), spec)] if flip else [])

    with ThreadPoolExecutor(1, thread_name_prefix="facequant-prefetch") as pool:
        start, call, pending = 0, 0, None
        while start < len(faces) or pending is not None:
            current = pending
            if start < len(faces):
                size = min(plan.size(call), len(faces) - start)
                pending, start, call = pool.submit(load, start, start + size), start + size, call + 1
            else:
                pending = None
            if current is not None:
                inputs = current.result()
                yield len(inputs[0]), inputs


def embed(
    model_path: Path,
    faces: Faces,
    spec: InputSpec,
    batch_size: int | None = None,
    cfg: RuntimeConfig = ORT,
    flip: bool = False,
    arithmetic: Arithmetic = "host",
) -> np.ndarray:
    """Embeddings of uint8 NHWC RGB faces on the configured runtime (or under a target's emulated arithmetic), fed
    as spec says, batch by batch to bound memory (batch_size None: the fastest, timed on the first faces); with
    flip, each is the L2-normalised sum of the face's and its mirror image's."""
    threads = job_cpus() or 0  # jobs in parallel share cores
    sess = open_session(model_path, cfg, threads, spec.output, arithmetic)
    plan, out = BatchPlan(batch_size), []
    desc = f"embedding {model_path.name} ({name(cfg, arithmetic)}{', flip-fused' if flip else ''})"
    with tqdm(total=len(faces), desc=desc, unit="face") as bar:
        for size, inputs in _prefetched(faces, plan, spec, flip):
            start = time.perf_counter()
            emb = sess.run(inputs[0])
            if flip:
                emb = emb + sess.run(inputs[1])
                emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
            plan.record(size, time.perf_counter() - start)
            out.append(emb)
            bar.update(size)
    if plan.rates and not plan.fixed:
        log.info(
            "embedded %d faces at batch %d (%.1f faces/s in the probe)", len(faces), plan.best, plan.rates[plan.best]
        )
    return np.concatenate(out)
