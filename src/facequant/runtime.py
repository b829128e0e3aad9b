"""The inference runtime: ONNX Runtime sessions, input preprocessing and batched embedding.

It imports neither torch nor h5py, so quantization, evaluation and benchmarks load only what they run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

GRAPH_OPTIMIZATION = "ORT_ENABLE_ALL"


def name() -> str:
    """The runtime and its version, part of every cached result it computes."""
    return f"onnxruntime {ort.__version__}"


def preprocess(faces: np.ndarray, method: str) -> np.ndarray:
    """uint8 NHWC RGB faces -> float32 NCHW network input.

    fixed: (x - 127.5) / 128 (facenet-pytorch); per_image: Sandberg's prewhiten, per-image mean and
    population std, the std floored at 1/sqrt(n).
    """
    x = faces.astype(np.float32).transpose(0, 3, 1, 2)
    if method == "fixed":
        return (x - 127.5) / 128.0
    if method == "per_image":
        axes = (1, 2, 3)
        mean = x.mean(axis=axes, keepdims=True)
        std = x.std(axis=axes, keepdims=True)
        floor = 1.0 / np.sqrt(x[0].size)
        return ((x - mean) / np.maximum(std, floor)).astype(np.float32)
    raise ValueError(f"unknown preprocessing {method!r}; choose fixed or per_image")


def session(model_path: Path, threads: int = 0) -> ort.InferenceSession:
    """CPU session at ORT_ENABLE_ALL (ENABLE_EXTENDED makes INT8 QDQ models ~1.5x slower)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION)
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, inputs: np.ndarray) -> np.ndarray:
    """The first output of a single-input model."""
    return sess.run(None, {sess.get_inputs()[0].name: inputs})[0]


def embed(model_path: Path, faces: np.ndarray, method: str, batch_size: int = 64) -> np.ndarray:
    """Embeddings of uint8 NHWC faces, preprocessed batch by batch to bound memory."""
    sess = session(model_path)
    out = []
    for start in tqdm(range(0, len(faces), batch_size), desc=f"embedding {model_path.name}", unit="batch"):
        out.append(run(sess, preprocess(faces[start : start + batch_size], method)))
    return np.concatenate(out)
