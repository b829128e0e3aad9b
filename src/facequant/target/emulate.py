"""Evaluate a static QDQ model (u8 activations, s8 weights) under a target's integer arithmetic, from any host.

"exact": VNNI/AMX (vpdpbusd[s]) add u8 x s8 products exactly in int32, so the float QDQ graph is the reference.
"avx2": AVX2 without VNNI multiplies with vpmaddubsw, which adds two adjacent u8 x s8 products into a saturating int16.
MLAS facts (microsoft/onnxruntime, onnxruntime/core/mlas/lib; symbols cited since line numbers move between commits):
- x86_64/QgemmU8S8KernelAvx2.S (MultiplyAccumulateRow) and QgemmU8X8KernelAvx2.S (MultiplyAccumulateRowU8S8Avx2):
  vpbroadcastd of 4 consecutive K bytes of a row of A (u8 activations), `vpmaddubsw ymm3,ymm2,ymm0` with A as the
  unsigned and packed B (s8 weights) as the signed operand, vpmaddwd by 1, vpaddd: bytes (0,1),(2,3) of each K quad
  pair up, i.e. pairs (k, k+1) for even k. MlasGemmU8S8CopyPackBAvx2 (vpunpcklbw/wd) keeps B[k..k+3][n] in K order
  and zero-pads CountK to a multiple of 4, so an odd last k pairs with 0 (never saturates).
- qgemm.h MlasGemmQuantOperation/MlasGemmQuantPackedOperation: K is cut in blocks of 128/384 (multiples of 4: pairing
  is global); zero points enter only through int32 RowSum/ColumnSum buffers, so saturation acts on raw u8 x s8.
- qgemm_kernel_avx2.cpp MlasGemmQuantTryGemvKernel: M == 1 with zero zero points -> QgemvU8S8KernelAvx2.S, the same
  vpmaddubsw over 4 K rows (same pairs).
- providers/cpu/quantization/qlinearconv.cc: NHWC input, ReorderFilter -> B[K=(kh,kw,cin), Cout] with cin fastest,
  Im2col pads with the input zero point. All-zero s8 weight zero points -> TryConvSymPrepack -> MlasConvSym
  (convsym.cpp MlasConvSymDispatchAvx2 needs group 1, Cin % 4 == 0, Cout % 8 == 0, Cout >= 16) whose
  x86_64/ConvSymKernelAvx2.S MultiplyAccumulateRowAvx2 does the same vpmaddubsw on 4 channels of one tap: same pairs.
  Depthwise (ConvSymDepthwiseKernelAvx2, MlasConvDepthwise) widens (vpmovzxbd + vpmaddwd) and U8U8 uses vpmaddwd on
  words: both exact, not emulated.
- platform.cpp: AVX2 installs the Avx2 GemmU8S8Kernel/GemvU8S8Kernel/ConvSymU8S8Dispatch; AVX-VNNI, AVX512-VNNI and
  AMX replace them (exact). AVX512BW without VNNI (MlasGemmU8S8KernelAvx512Core) also uses vpmaddubsw: "avx2" too.
- optimizer/qdq_transformer/selectors_actions/qdq_selectors.cc ConvNodeGroupSelector: DQ->Conv runs in integers only
  when a single Q of the input type consumes it (else float Conv, exact). MatMul/Gemm -> QLinearMatMul,
  MatMulIntegerToFloat or QGemm, all MlasGemm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from facequant.target.branches import Builder, Site, dense, pad, sparse
from facequant.target.pairs import SaturationStats, mlas_k_order, pairs_of, saturating_pairs_possible

Target = Literal["exact", "avx2"]
_DENSE_MACS = 16384  # per output pixel: below it a Conv branch is dense (no index lists), see branches.dense


@dataclass
class EmulationResult:
    outputs: list[np.ndarray]  # the model's outputs, in graph order
    stats: dict[str, SaturationStats]  # per emulated node
    probes: dict[str, np.ndarray] = field(default_factory=dict)  # intermediate tensors asked for


class TargetEmulator:
    """A QDQ model evaluated by ORT (graph optimizations off, so DQ -> float op -> Q) under a target's arithmetic.

    Each emulated Conv/MatMul/Gemm gets an in-graph branch on the raw u8 activations of its hot pairs only
    (saturating_pairs_possible): their exact pair sums p (integers < 2**24, exact in float32), the saturated ones
    (|p| > 32767 and clip16(p) != p) and, for target "avx2", scale * (clip16(p) - p) added to the float output.
    Saturation statistics are reported for both targets.
    """

    def __init__(
        self,
        model: onnx.ModelProto | str | Path,
        target: Target,
        threads: int | None = None,
        probes: Sequence[str] = (),
    ) -> None:
        if target not in ("exact", "avx2"):
            raise ValueError(f"unknown target {target!r}")
        model = onnx.load(str(model)) if isinstance(model, str | Path) else model
        if next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < 16:
            model = onnx.version_converter.convert_version(model, 16)  # ScatterND with reduction
        self.target, self.skipped, self._sites = target, {}, {}
        m = onnx.ModelProto()
        m.CopyFrom(model)
        self._opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
        self.outputs = [o.name for o in m.graph.output]  # the model's own outputs, in the order run() returns them
        inferred = onnx.shape_inference.infer_shapes(m).graph
        self._types = {v.name: v.type.tensor_type for v in [*inferred.value_info, *inferred.input]}
        self._const = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
        self._const |= {
            n.output[0]: numpy_helper.to_array(n.attribute[0].t)
            for n in m.graph.node
            if n.op_type == "Constant" and n.attribute[0].name == "value"
        }
        self._prod = {o: n for n in m.graph.node for o in n.output}
        self._cons: dict[str, list[onnx.NodeProto]] = {}
        for n in m.graph.node:
            for i in n.input:
                self._cons.setdefault(i, []).append(n)
        nodes: list[onnx.NodeProto] = []
        for k, original in enumerate(m.graph.node):
            node = onnx.NodeProto()
            node.CopyFrom(original)
            nodes.append(node)
            if node.op_type in ("Conv", "MatMul", "Gemm"):
                name = node.name or f"{node.op_type}_{k}"
                reason = self._site(node, name, m.graph, nodes)
                if reason:
                    self.skipped[name] = reason
        del m.graph.node[:]
        m.graph.node.extend(nodes)
        self._probes = list(probes)
        for t in self._probes:  # e.g. a Conv output, which the branch rewrote under its own name
            elem = self._types[t].elem_type if t in self._types else TensorProto.FLOAT
            m.graph.output.append(helper.make_tensor_value_info(t, elem, None))
        self.model = m  # the augmented graph, e.g. for onnx.save or profiling
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if threads:
            so.intra_op_num_threads = threads
        self.session = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])

    @property
    def sites(self) -> list[str]:
        """Names of the emulated nodes (self.skipped says why the others are not)."""
        return list(self._sites)

    def _qparams(self, dq: onnx.NodeProto | None) -> tuple[np.ndarray, np.ndarray, int] | None:
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[1] not in self._const:
            return None
        zp = self._const.get(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else np.zeros((), np.uint8)
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        return None if zp is None else (self._const[dq.input[1]].astype(np.float64), zp, axis)

    def _site(self, node: onnx.NodeProto, name: str, graph: onnx.GraphProto, nodes: list) -> str | None:
        """Plan one node and append its branch to `nodes`; returns why it is not emulated instead."""
        dqx, dqw = self._prod.get(node.input[0]), self._prod.get(node.input[1])
        qx, qw = self._qparams(dqx), self._qparams(dqw)
        if qx is None or qw is None or dqw.input[0] not in self._const:
            return "inputs are not DQ(activation) and DQ(constant weight) with constant quantization parameters"
        (sx, zx, _), (sw, _, w_axis), w = qx, qw, self._const[dqw.input[0]]
        if zx.dtype != np.uint8 or w.dtype != np.int8:
            return f"{zx.dtype} x {w.dtype}: only u8 x s8 uses vpmaddubsw (U8U8/S8S8 kernels are exact)"
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        x_type = self._types.get(dqx.input[0])
        rank = len(x_type.shape.dim) if x_type is not None and x_type.HasField("shape") else None
        if node.op_type == "Conv":
            use = self._cons.get(node.output[0], [])
            if len(use) == 1 and use[0].op_type in ("Relu", "Clip"):
                use = self._cons.get(use[0].output[0], [])
            q_zp = use[0].input[2] if len(use) == 1 and len(use[0].input) > 2 else ""
            if (
                node.output[0] in self.outputs
                or len(use) != 1
                or use[0].op_type != "QuantizeLinear"
                or (q_zp and self._const.get(q_zp, np.zeros(0)).dtype != np.uint8)
            ):
                return "no single u8 QuantizeLinear consumer: ORT keeps a float Conv (exact)"
            if w.ndim != 4 or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
                return "only 2-D convolutions with explicit pads are emulated"
            group, (cout, cin_g, kh, kw) = attrs.get("group", 1), w.shape
            if cin_g == 1 and cout == group:
                return "depthwise: MLAS widens to 32 bits (exact)"
            og = cout // group
            w_groups = [mlas_k_order(w[g * og : (g + 1) * og]) for g in range(group)]

            def slot(g: int, k: int) -> tuple[int, ...]:  # (ky, kx, input channel) of K index k in group g
                return (k // cin_g) // kw, (k // cin_g) % kw, g * cin_g + k % cin_g

            o_axis, kernel = 0, (kh, kw, attrs)
        else:
            if w.ndim != 2 or rank is None or (node.op_type == "Gemm" and attrs.get("transA", 0)):
                return "needs a 2-D weight, a known activation rank and transA = 0"
            trans_b = node.op_type == "Gemm" and attrs.get("transB", 0)
            w_groups, o_axis, kernel = ([w] if trans_b else [w.T]), (0 if trans_b else 1), ()

            def slot(g: int, k: int) -> tuple[int, ...]:
                return (k,)

        cout = sum(g.shape[0] for g in w_groups)
        if sw.size > 1 and (w_axis % w.ndim != o_axis or sw.size != cout):
            return "weight scales are not per output channel"
        scale = np.broadcast_to(sx * sw.reshape(-1), (cout,)) * float(attrs.get("alpha", 1.0))
        hot = []  # (slot1, slot2, o, w1, w2)
        o0 = 0
        for g, wg in enumerate(w_groups):
            w1, w2 = pairs_of(wg)
            for o, j in zip(*np.nonzero(saturating_pairs_possible(wg)), strict=True):
                hot.append((slot(g, 2 * j), slot(g, 2 * j + 1), o0 + o, w1[o, j], w2[o, j]))
            o0 += wg.shape[0]
        b, out, correct = Builder(f"satemu/{name}", graph), node.output[0], self.target == "avx2"
        if hot and correct:
            node.output[0] = f"{b.prefix}/exact"  # the branch writes the corrected tensor under the old name
        site = Site(node.op_type, math.ceil(w_groups[0].shape[1] / 2), b.output(b.n("Shape", [node.output[0]])))
        self._sites[name] = site
        if hot:
            x_f = b.n("Cast", [dqx.input[0]], to=TensorProto.FLOAT)
            if node.op_type == "Conv":
                x_f = pad(b, x_f, attrs, int(zx))
            if node.op_type == "Conv" and len(hot) * (w[0].size * group + 2 * cout) <= _DENSE_MACS:
                dense(b, site, x_f, node.output[0], out, hot, w.shape[1:], attrs, scale, correct)
            else:
                sparse(b, site, x_f, node.output[0], out, hot, rank or 4, kernel, scale, correct, self._opset)
        nodes.extend(b.nodes)
        return None

    def run(self, feeds: dict[str, np.ndarray] | np.ndarray) -> EmulationResult:
        """Model outputs for one batch and per-node saturation counts over it."""
        if isinstance(feeds, np.ndarray):
            feeds = {self.session.get_inputs()[0].name: feeds}
        extra = self._probes + [n for s in self._sites.values() for n in (s.shape, s.idx, *s.counts) if n]
        got = dict(zip(self.outputs + extra, self.session.run(self.outputs + extra, feeds), strict=True))
        stats = {}
        for name, s in self._sites.items():
            dims = tuple(got[s.shape])
            total = int(np.prod(dims))
            if s.counts[0]:
                n_pairs, n_out = (int(got[c]) for c in s.counts)
            elif s.idx:
                hit = np.zeros(total, bool)
                hit[np.ravel_multi_index(tuple(got[s.idx].T), dims)] = True
                n_pairs, n_out = len(got[s.idx]), int(hit.sum())
            else:
                n_pairs = n_out = 0
            stats[name] = SaturationStats(s.op_type, total, n_out, total * s.pairs, n_pairs)
        return EmulationResult([got[n] for n in self.outputs], stats, {t: got[t] for t in self._probes})


def emulate(
    model: onnx.ModelProto | str | Path, feeds: dict[str, np.ndarray] | np.ndarray, target: Target
) -> EmulationResult:
    """One-off TargetEmulator(model, target).run(feeds)."""
    return TargetEmulator(model, target).run(feeds)
