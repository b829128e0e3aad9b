"""Do the runtime's integer kernels agree with the QDQ graph run in float, the quantization as written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facequant.config.running import RuntimeConfig
from facequant.config.target import Arithmetic
from facequant.machine import host_isa
from facequant.onnxmodel import InputSpec
from facequant.runtime import sessions as runtime
from facequant.schema import Metric

BATCH = 8  # faces a call
KERNEL_COSINE_FLOOR = 0.99  # the integer kernels' embeddings against the QDQ model's own (float) arithmetic


def kernel_agreement(
    qdq: Path,
    faces: np.ndarray,
    spec: InputSpec,
    engine: RuntimeConfig,
    arithmetic: Arithmetic = "host",
    kernels: np.ndarray | None = None,
    written: np.ndarray | None = None,
) -> dict[Metric, float]:
    """Cosine between the variant's embeddings from the target's integer kernels (the host's as evaluated, or the
    target's emulated arithmetic) and from its QDQ graph run in float, the quantization as written: below
    KERNEL_COSINE_FLOOR the kernels lose what the quantized model does not, e.g. U8S8 products saturating in 16
    bits on x86 without VNNI. kernels, written: those embeddings when already computed (an emulation pass; the
    sensitivity measurement's QDQ graph in float), else computed here."""
    if kernels is None:
        kernels = runtime.embed(qdq, faces, spec, BATCH, engine, arithmetic=arithmetic)
    reference = written
    if reference is None:
        session = runtime.OrtSession(runtime.session(qdq, level="ORT_DISABLE_ALL"), output=spec.output)
        batches = [faces[i : i + BATCH] for i in range(0, len(faces), BATCH)]
        reference = np.concatenate([session.run(runtime.preprocess(batch, spec)) for batch in batches])
    cosine = (kernels * reference).sum(1) / np.linalg.norm(kernels, axis=1) / np.linalg.norm(reference, axis=1)
    return {Metric.KERNEL_COSINE_MEAN: float(cosine.mean()), Metric.KERNEL_COSINE_MIN: float(cosine.min())}


def kernel_warning(agreement: dict[Metric, float], isa: str | None = None) -> str | None:
    """What to do when the target's integer kernels (the host's by default) disagree with the quantized model, or
    None when they agree."""
    low = agreement[Metric.KERNEL_COSINE_MIN]
    if low >= KERNEL_COSINE_FLOOR:
        return None
    isa = isa or host_isa()
    cause = (
        f"the {isa} target has no VNNI (avx512_vnni, avx_vnni or amx_int8), so ONNX Runtime's U8S8 kernels add pairs "
        "of u8 x s8 products in saturating 16-bit lanes; quant.half_range=saturating (the avx2 preset: 7-bit "
        "weights where they saturate) or quant.reduce_range=true (7 bits everywhere) avoids it"
        if isa == "avx2"
        else "try quant.reduce_range=true, or runtime=openvino to tell a kernel fault from the quantization"
    )
    return (
        f"the {isa} target's integer kernels disagree with the quantized model run in float: embedding cosine "
        f"min {low:.4f}, mean {agreement[Metric.KERNEL_COSINE_MEAN]:.4f} on the held-out faces; {cause}"
    )
