"""A target's integer arithmetic on real faces and the real msceleb128 model: the emulation against the host's own
kernels, and the avx2 preset, which halves the weights of the nodes that saturate and only those."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

from facequant.evaluation.paired import embedding_cosines
from facequant.machine import host_isa
from facequant.onnxmodel import InputSpec
from facequant.quant.quantize import FaceReader, weights_of
from facequant.quant.saturation import saturating_nodes, saturation
from facequant.runtime.sessions import embed

SPEC = InputSpec("per_image")  # msceleb128's preprocessing
BOUND = 1e-3  # target.max_saturation's default


@pytest.fixture(scope="module")
def variants(fp32_pre, aligned_sample, tmp_path_factory):
    """Full-range U8S8 and the avx2 preset of msceleb128, calibrated on 32 real faces; 32 others to score."""
    tmp, pre = tmp_path_factory.mktemp("targets"), fp32_pre
    calibration, faces = aligned_sample.faces[:32], aligned_sample.faces[32:]

    def build(name: str, half: list[str]):
        path = tmp / f"{name}.onnx"
        quantize_static(
            str(pre),
            str(path),
            FaceReader(calibration, SPEC, 16),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            extra_options={"TensorQuantOverrides": {w: [{"reduce_range": True}] for w in half}},
        )
        return path

    full = build("full", [])
    table = saturation(full, calibration, SPEC).table
    half = weights_of(pre, saturating_nodes(table, BOUND))
    return pre, full, build("preset", half), table, half, faces


def test_the_avx2_preset_halves_only_the_weights_of_saturating_nodes(variants):
    pre, full, preset, table, half, faces = variants
    hot = saturating_nodes(table, BOUND)
    assert 0 < len(hot) < 0.1 * len(table)  # a few nodes, not the blanket reduce_range
    assert table.outputs_fraction.iloc[0] == table.outputs_fraction.max() > BOUND  # sorted, worst first
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(preset)).graph.initializer}
    halved = [weights[f"{w}_quantized"] for w in half]
    assert halved and all(np.abs(w.astype(int)).max() <= 64 for w in halved)  # 7 bits: pairs cannot saturate
    others = [w for name, w in weights.items() if w.dtype == np.int8 and name.removesuffix("_quantized") not in half]
    assert max(np.abs(w.astype(int)).max() for w in others) > 64  # full range elsewhere
    after = saturation(preset, faces, SPEC).table.set_index("node")
    assert (after.loc[hot].outputs_fraction == 0).all()


def test_avx2_arithmetic_costs_the_full_range_variant_and_not_the_preset(variants):
    _, full, preset, _, _, faces = variants
    lost = {}
    for name, model in (("full", full), ("preset", preset)):
        written = embed(model, faces, SPEC, arithmetic="exact")
        emulated = embed(model, faces, SPEC, arithmetic="avx2")
        lost[name] = embedding_cosines(emulated, written)
    # the saturation pass yields the preset's emulated embeddings too, so the kernel check can reuse them
    np.testing.assert_allclose(saturation(preset, faces, SPEC).embeddings, emulated, rtol=0, atol=1e-5)
    assert lost["preset"].mean() >= 0.999 and lost["preset"].min() > lost["full"].min()
    assert lost["full"].mean() < lost["preset"].mean()


def test_the_hosts_kernels_compute_what_its_arithmetic_is_emulated_as(variants):
    """On a VNNI/AMX host the real kernels agree with the exact emulation; on an AVX2 host with the avx2 one."""
    _, full, _, _, _, faces = variants
    host = "avx2" if host_isa() == "avx2" else "exact"
    if host_isa() not in ("avx2", "vnni", "amx"):
        pytest.skip(f"this CPU ({host_isa()}) is not an x86 INT8 target facequant emulates")
    real = embed(full, faces, SPEC)
    emulated = embed(full, faces, SPEC, arithmetic=host)
    assert embedding_cosines(real, emulated).mean() >= 0.999
    other = embed(full, faces, SPEC, arithmetic="exact" if host == "avx2" else "avx2")
    assert embedding_cosines(real, other).mean() < embedding_cosines(real, emulated).mean()


@pytest.mark.skipif(
    host_isa() != "avx2",
    reason=f"needs an AVX2-only CPU (no VNNI/AMX) to run the real saturating kernels; this one is {host_isa()}",
)
def test_avx2_emulation_tracks_the_real_avx2_kernels_node_by_node(variants):
    """The agreement the emulation rests on, where the real AVX2 kernels run: embeddings and the loss they cause."""
    _, full, preset, _, _, faces = variants
    written = embed(full, faces, SPEC, arithmetic="exact")
    real, emulated = embed(full, faces, SPEC), embed(full, faces, SPEC, arithmetic="avx2")
    assert embedding_cosines(real, emulated).mean() >= 0.999
    assert abs(embedding_cosines(real, written).mean() - embedding_cosines(emulated, written).mean()) < 0.002
    assert embedding_cosines(embed(preset, faces, SPEC), embed(preset, faces, SPEC, arithmetic="avx2")).mean() >= 0.999
