"""The inference runtimes: ONNX Runtime or OpenVINO sessions over one ONNX file, preprocessing, batched embedding.

It imports neither torch nor h5py, and OpenVINO only when asked for, so each stage loads only what it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def embed(
    model_path: Path,
    faces: np.ndarray,
    spec: InputSpec,
    batch_size: int = 64,
    cfg: RuntimeConfig = ORT,
    flip: bool = False,
    arithmetic: Arithmetic = "host",
) -> np.ndarray:
    """Embeddings of uint8 NHWC RGB faces on the configured runtime (or under a target's emulated arithmetic), fed
    as spec says, batch by batch to bound memory; with flip, each is the L2-normalised sum of the face's and its
    mirror image's."""
    threads = job_cpus() or 0  # jobs in parallel share cores
    sess = open_session(model_path, cfg, threads, spec.output, arithmetic)
    out = []
    desc = f"embedding {model_path.name} ({name(cfg, arithmetic)}{', flip-fused' if flip else ''})"
    for start in tqdm(range(0, len(faces), batch_size), desc=desc, unit="batch"):
        batch = faces[start : start + batch_size]
        emb = sess.run(preprocess(batch, spec))
        if flip:
            emb = emb + sess.run(preprocess(np.ascontiguousarray(batch[:, :, ::-1]), spec))
            emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        out.append(emb)
    return np.concatenate(out)
