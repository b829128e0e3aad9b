"""facequant.target.emulate: AVX2 (saturating vpmaddubsw pairs) vs exact int8 arithmetic, on tiny models."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from facequant.machine import host_isa
from facequant.target.emulate import TargetEmulator
from facequant.target.pairs import mlas_k_order, saturating_matmul, saturating_pairs_possible

ZX, SX = 200, 0.02  # activation zero point and scale of the hand-built models


def clip16(v: int) -> int:
    return min(max(v, -32768), 32767)


def loop_dot(a: list[int], w: list[int]) -> int:
    """vpmaddubsw + vpmaddwd + vpaddd, one output: int16-saturated sums of (a[2j]*w[2j] + a[2j+1]*w[2j+1])."""
    acc = 0
    for k in range(0, len(a), 2):
        acc += clip16(a[k] * w[k] + (a[k + 1] * w[k + 1] if k + 1 < len(a) else 0))
    return acc


def test_screen_is_exactly_the_pairs_that_can_saturate() -> None:
    w = np.array(list(itertools.product(range(-128, 128), repeat=2)))  # every (w1, w2)
    extremes = np.array([[a1, a2] for a1 in (0, 255) for a2 in (0, 255)])  # p is linear in a: extremes suffice
    p = extremes @ w.T
    can = ((p > 32767) | (p < -32768)).any(axis=0)
    assert can.sum() > 0
    assert np.array_equal(saturating_pairs_possible(w)[:, 0], can)


def test_saturating_matmul_matches_a_loop() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(150, 256, size=(5, 37))  # odd K: the last k pairs with MLAS's zero padding
    w = rng.integers(-128, 128, size=(6, 37))
    got = saturating_matmul(a, w)
    want = np.array([[loop_dot(list(r), list(c)) for c in w] for r in a])
    assert np.array_equal(got, want)
    assert (got != a @ w.T).sum() > 10  # it did saturate


def _dq(name: str, q: str, scale: np.ndarray, zp: np.ndarray, axis: int | None = None) -> tuple:
    inits = [numpy_helper.from_array(scale.astype(np.float32), f"{name}_s"), numpy_helper.from_array(zp, f"{name}_z")]
    kw = {} if axis is None else {"axis": axis}
    return helper.make_node("DequantizeLinear", [q, f"{name}_s", f"{name}_z"], [name], **kw), inits


def _model(x_shape: list[int], op: helper.NodeProto, w_q: np.ndarray, w_s: np.ndarray, w_axis: int) -> onnx.ModelProto:
    """u8 input -> DQ -> op(DQ(s8 weight)) -> Q(u8) -> DQ -> y; op's output is called "acc"."""
    dx, ix = _dq("x", "xq", np.array(SX), np.array(ZX, np.uint8))
    dw, iw = _dq("w", "wq", w_s, np.zeros(w_s.shape, np.int8), w_axis)
    q = helper.make_node("QuantizeLinear", ["acc", "y_s", "y_z"], ["yq"])
    dy, iy = _dq("y", "yq", np.array(0.5), np.array(128, np.uint8))
    graph = helper.make_graph(
        [dx, dw, op, q, dy],
        "g",
        [helper.make_tensor_value_info("xq", TensorProto.UINT8, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w_q, "wq"), *ix, *iw, *iy],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_conv_saturating_pair_matches_loop() -> None:
    """Cin = 3 so K = (kh, kw, cin) pairs straddle taps; zero-point padding (raw 200) takes part in the pairs."""
    rng = np.random.default_rng(1)
    w = rng.integers(-8, 9, size=(4, 3, 3, 3)).astype(np.int8)
    w[1, :, 0, 0] = [0, 127, 127]  # K order: k0 = (0,0,c0), k1 = (0,0,c1), k2 = (0,0,c2), k3 = (0,1,c0)
    w[1, 0, 0, 1] = 120  # pair (k2, k3) = (127, 120) saturates; k1 = 127 pairs with k0 = 0 and cannot
    w_s = np.array([0.01, 0.02, 0.03, 0.04])
    conv = helper.make_node("Conv", ["x", "w"], ["acc"], pads=[1, 1, 1, 1], strides=[2, 2])
    model = _model([2, 3, 5, 5], conv, w, w_s, 0)
    xq = rng.integers(0, 256, size=(2, 3, 5, 5)).astype(np.uint8)
    xq[0, :, 1:3, 1:3] = 255

    xp = np.pad(xq.astype(np.int64), ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=ZX)
    want, want_exact = np.zeros((2, 4, 3, 3)), np.zeros((2, 4, 3, 3))
    for n, o, y, x in itertools.product(range(2), range(4), range(3), range(3)):
        col = [xp[n, c, 2 * y + ky, 2 * x + kx] for ky in range(3) for kx in range(3) for c in range(3)]
        wk = [int(w[o, c, ky, kx]) for ky in range(3) for kx in range(3) for c in range(3)]
        want[n, o, y, x] = loop_dot(col, wk) - ZX * sum(wk)
        want_exact[n, o, y, x] = np.dot(col, wk) - ZX * sum(wk)
    assert (want != want_exact).any()

    for target, acc in (("avx2", want), ("exact", want_exact)):
        res = TargetEmulator(model, target, probes=["acc"]).run(xq)
        got = res.probes["acc"] / (SX * w_s[None, :, None, None])
        np.testing.assert_array_equal(np.round(got), acc)  # the int32 accumulators, exactly
        np.testing.assert_allclose(got, acc, atol=1e-3 * np.abs(acc).max())
        (stats,) = res.stats.values()
        assert stats.outputs == 2 * 4 * 9 and stats.pair_sums == 2 * 4 * 9 * 14
        assert stats.outputs_saturated == (want != want_exact).sum()


@pytest.mark.parametrize("op", ["MatMul", "Gemm"])
def test_matmul_and_gemm_saturating_pairs_match_loop(op: str) -> None:
    rng = np.random.default_rng(2)
    w_ko = rng.integers(-128, 128, size=(7, 4)).astype(np.int8)  # K = 7: the odd last k is unpaired
    w_s = np.array([0.01, 0.02, 0.03, 0.04])
    if op == "MatMul":
        node, w_q, axis, alpha = helper.make_node("MatMul", ["x", "w"], ["acc"]), w_ko, 1, 1.0
    else:
        node = helper.make_node("Gemm", ["x", "w"], ["acc"], transB=1, alpha=0.5)
        w_q, axis, alpha = np.ascontiguousarray(w_ko.T), 0, 0.5
    xq = rng.integers(100, 256, size=(3, 7)).astype(np.uint8)
    model = _model([3, 7], node, w_q, w_s, axis)
    want = np.array([[loop_dot(list(map(int, r)), list(map(int, c))) - ZX * int(c.sum()) for c in w_ko.T] for r in xq])
    exact = xq.astype(np.int64) @ w_ko - ZX * w_ko.astype(np.int64).sum(0)
    assert (want != exact).any()
    res = TargetEmulator(model, "avx2", probes=["acc"]).run(xq)
    got = res.probes["acc"] / (alpha * SX * w_s)
    np.testing.assert_array_equal(np.round(got), want)
    (stats,) = res.stats.values()
    assert stats.pair_sums == 3 * 4 * 4 and stats.outputs_saturated == (want != exact).sum()


def test_small_weights_give_identical_targets() -> None:
    rng = np.random.default_rng(3)
    w = rng.integers(-64, 65, size=(8, 6, 3, 3)).astype(np.int8)  # |w1| + |w2| <= 128 everywhere
    w[:, :, 1, 1] = 64
    assert not saturating_pairs_possible(mlas_k_order(w)).any()
    model = _model(
        [2, 6, 6, 6], helper.make_node("Conv", ["x", "w"], ["acc"], pads=[1, 1, 1, 1]), w, np.full(8, 0.01), 0
    )
    xq = np.full((2, 6, 6, 6), 255, np.uint8)
    avx2, exact = (TargetEmulator(model, t, probes=["acc"]).run(xq) for t in ("avx2", "exact"))
    assert len(avx2.stats) == 1 and next(iter(avx2.stats.values())).outputs_saturated == 0
    np.testing.assert_array_equal(avx2.probes["acc"], exact.probes["acc"])
    np.testing.assert_array_equal(avx2.outputs[0], exact.outputs[0])


# --- a small torch network quantized by ORT ---------------------------------------------------------------------


def _net_fp32(path: Path) -> Path:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(32, 16, 1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 8),
    ).eval()
    with torch.no_grad():  # big same-sign neighbours in the first conv: bright pixels saturate int16 pair sums
        net[0].weight[:4] = net[0].weight[:4].abs() + 0.3
    with warnings.catch_warnings():  # the TorchScript exporter (dynamo=False) warns that it is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net, torch.zeros(1, 3, 16, 16), str(path), input_names=["x"], output_names=["y"],
            dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False, opset_version=17,
        )  # fmt: skip
    return path


def _quantize(fp32: Path, out: Path, reduce_range: bool) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(4)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)} for _ in range(8)])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    quantize_static(
        str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce_range,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def nets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("nets")
    fp32 = _net_fp32(d / "fp32.onnx")
    return {"full": _quantize(fp32, d / "qdq.onnx", False), "reduced": _quantize(fp32, d / "qdq7.onnx", True)}


def _inputs() -> np.ndarray:
    x = np.random.default_rng(5).uniform(-1, 1, (6, 3, 16, 16)).astype(np.float32)
    x[:3, :, 4:12, 4:12] = 1.0  # bright patches
    return x


def _ort(path: Path, optimized: bool) -> np.ndarray:
    so = ort.SessionOptions()
    if not optimized:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"x": _inputs()})[0]


def _output_step(path: Path) -> float:
    model = onnx.load(str(path))
    dq = next(n for n in model.graph.node if n.output[0] == model.graph.output[0].name)
    return float(numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == dq.input[1])))


def test_emulation_agrees_with_ort_on_this_host(nets: dict[str, Path]) -> None:
    """ORT on this host computes as its ISA does (exact with VNNI or AMX); the other target visibly differs."""
    path, host = nets["full"], "avx2" if host_isa() == "avx2" else "exact"
    em = {t: TargetEmulator(path, t).run(_inputs()) for t in ("exact", "avx2")}
    assert len(em["exact"].stats) == 4, em["exact"].stats  # 3 Convs + the Gemm/MatMul
    np.testing.assert_allclose(em["exact"].outputs[0], _ort(path, optimized=False), atol=1e-6)  # the float QDQ graph
    step = _output_step(path)
    ort_int8 = _ort(path, optimized=True)  # QLinearConv/QGemm: the host's integer kernels
    assert np.abs(em[host].outputs[0] - ort_int8).max() <= step  # 0 here: same integers, same rounding
    other = "avx2" if host == "exact" else "exact"
    assert np.abs(em[other].outputs[0] - ort_int8).max() > 5 * step
    first = next(iter(em["avx2"].stats.values()))
    assert first.outputs_saturated > 0 and 0 < first.pair_sums_fraction < first.outputs_fraction


def test_reduce_range_weights_never_saturate(nets: dict[str, Path]) -> None:
    x = _inputs()
    full = TargetEmulator(nets["full"], "avx2").run(x)
    assert sum(s.pair_sums_saturated for s in full.stats.values()) > 0  # the 8-bit weights do saturate

    model = onnx.load(str(nets["reduced"]))
    weights = [numpy_helper.to_array(i) for i in model.graph.initializer if i.data_type == TensorProto.INT8]
    assert weights and max(np.abs(w.astype(int)).max() for w in weights) <= 64
    for w in weights:
        w_ok = mlas_k_order(w) if w.ndim == 4 else w.reshape(w.shape[0], -1)
        assert not saturating_pairs_possible(w_ok).any() and not saturating_pairs_possible(w_ok.T).any()
    avx2, exact = (TargetEmulator(model, t).run(x) for t in ("avx2", "exact"))
    assert len(avx2.stats) == 4 and all(s.pair_sums_saturated == 0 for s in avx2.stats.values())
    np.testing.assert_array_equal(avx2.outputs[0], exact.outputs[0])


@pytest.mark.parametrize(
    ("flags", "isa"),
    [("fpu sse4_1 avx2 fma", "avx2"), ("avx2 avx512bw", "avx2"), ("avx2 avx512_vnni", "vnni"),
     ("avx2 avx_vnni", "vnni"), ("avx2 avx512_vnni amx_int8", "amx"), ("sse4_1", "other")],
)  # fmt: skip
def test_host_isa_from_cpu_flags(flags: str, isa: str) -> None:
    """AVX-512 without VNNI still multiplies with vpmaddubsw: it is an avx2 target."""
    assert host_isa(frozenset(flags.split())) == isa
