"""Do the runtime's integer kernels agree with the QDQ graph run in float, the quantization as written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facequant.config.sections import RuntimeConfig
from facequant.machine import VNNI_FLAGS, cpu
from facequant.onnxmodel import InputSpec
from facequant.runtime import sessions as runtime
from facequant.schema import Metric

BATCH = 8  # faces a call
KERNEL_COSINE_FLOOR = 0.99  # the integer kernels' embeddings against the QDQ model's own (float) arithmetic


def kernel_agreement(qdq: Path, faces: np.ndarray, spec: InputSpec, engine: RuntimeConfig) -> dict[Metric, float]:
    """Cosine between the variant's embeddings from the runtime's integer kernels (as evaluated) and from its QDQ
    graph run in float, the quantization as written: below KERNEL_COSINE_FLOOR the kernels lose what the
    quantized model does not, e.g. U8S8 products saturating in 16 bits on x86 without VNNI."""
    kernels = runtime.embed(qdq, faces, spec, BATCH, engine)
    written = runtime.OrtSession(runtime.session(qdq, level="ORT_DISABLE_ALL"), output=spec.output)
    batches = [faces[i : i + BATCH] for i in range(0, len(faces), BATCH)]
    reference = np.concatenate([written.run(runtime.preprocess(batch, spec)) for batch in batches])
    cosine = (kernels * reference).sum(1) / np.linalg.norm(kernels, axis=1) / np.linalg.norm(reference, axis=1)
    return {Metric.KERNEL_COSINE_MEAN: float(cosine.mean()), Metric.KERNEL_COSINE_MIN: float(cosine.min())}


def kernel_warning(agreement: dict[Metric, float]) -> str | None:
    """What to do when the integer kernels disagree with the quantized model, or None when they agree."""
    low = agreement[Metric.KERNEL_COSINE_MIN]
    if low >= KERNEL_COSINE_FLOOR:
        return None
    flags = cpu()[1]
    cause = (
        "this CPU has no VNNI (avx512_vnni, avx_vnni or amx_int8), so ONNX Runtime's U8S8 kernels add pairs of "
        "u8 x s8 products in saturating 16-bit lanes; quant.reduce_range=true (7-bit weights) avoids it"
        if not flags & VNNI_FLAGS
        else "try quant.reduce_range=true, or runtime=openvino to tell a kernel fault from the quantization"
    )
    return (
        f"the runtime's integer kernels disagree with the quantized model run in float: embedding cosine "
        f"min {low:.4f}, mean {agreement[Metric.KERNEL_COSINE_MEAN]:.4f} on the held-out faces; {cause}"
    )
