"""The in-graph branch that emulates one node's AVX2 pair sums: ONNX nodes computing the exact u8 x s8 pair sums of
its hot weight pairs, which of them saturate int16, and the correction scale * (clip16(p) - p) to its float output."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from facequant.target.pairs import I16_MAX, I16_MIN

_BIG = np.iinfo(np.int64).max


class Builder:
    """Appends nodes/initializers with unique names; every value is exact integers held in float32 (< 2**24)."""

    def __init__(self, prefix: str, graph: onnx.GraphProto) -> None:
        self.prefix, self.graph, self.nodes, self.i = prefix, graph, [], 0

    def c(self, value: np.ndarray | float | list) -> str:
        arr = np.asarray(value)
        arr = arr.astype(np.float32) if arr.dtype.kind == "f" else arr.astype(np.int64)
        name = self.n("", [])
        self.graph.initializer.append(numpy_helper.from_array(arr, name))
        return name

    def n(self, op: str, inputs: list[str], out: str | None = None, **attrs: object) -> str:
        self.i += 1
        out = out or f"{self.prefix}/{self.i}"
        if op:
            self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def output(self, name: str) -> str:
        self.graph.output.append(helper.make_tensor_value_info(name, TensorProto.INT64, None))
        return name


@dataclass
class Site:
    op_type: str
    pairs: int  # int16 pair sums per output value: ceil(K/2)
    shape: str  # graph output: shape of the node's output
    idx: str = ""  # sparse branch: graph output [saturated pair sums, rank], output index of each
    counts: tuple[str, str] = ("", "")  # dense branch: graph outputs (pair sums saturated, outputs saturated)


def pad(b: Builder, x_f: str, attrs: dict, zx: int) -> str:
    """MLAS im2col / indirection buffers pad with the activation zero point: pad raw values with zx."""
    pt, pl, pb, pr = attrs.get("pads", [0, 0, 0, 0])
    if not (pt or pl or pb or pr):
        return x_f
    return b.n("Pad", [x_f, b.c([0, 0, pt, pl, 0, 0, pb, pr]), b.c(np.float32(zx))], mode="constant")


def dense(
    b: Builder,
    site: Site,
    x_f: str,
    y: str,
    out: str,
    hot: list,
    wshape: tuple,
    attrs: dict,
    scale: np.ndarray,
    correct: bool,
) -> None:
    """Small convs (e.g. the first one, whose u8 input often nears 255 and saturates a lot): every hot pair sum as
    a Conv with two non-zero taps, the correction and the counts as 1x1 Convs; no index lists."""
    cout = len(scale)
    taps, s01 = np.zeros((len(hot), wshape[0] * attrs.get("group", 1), *wshape[1:])), np.zeros((cout, len(hot)))
    for h, ((ky1, kx1, c1), (ky2, kx2, c2), o, w1, w2) in enumerate(hot):
        taps[h, c1, ky1, kx1], taps[h, c2, ky2, kx2], s01[o, h] = w1, w2, 1
    conv = {k: attrs[k] for k in ("strides", "dilations") if k in attrs}
    p = b.n("Conv", [x_f, b.c(taps.astype(np.float32))], **conv)
    d = b.n("Sub", [b.n("Clip", [p, b.c(np.float32(I16_MIN)), b.c(np.float32(I16_MAX))]), p])
    nz = b.n("Not", [b.n("Equal", [d, b.c(np.float32(0))])])
    hits = b.n("Conv", [b.n("Cast", [nz], to=TensorProto.FLOAT), b.c(s01[:, :, None, None].astype(np.float32))])
    site.counts = tuple(
        b.output(b.n("ReduceSum", [b.n("Cast", [t], to=TensorProto.INT64)], keepdims=0))
        for t in (nz, b.n("Greater", [hits, b.c(np.float32(0.5))]))
    )
    if correct:
        corr = (s01 * scale[:, None])[:, :, None, None].astype(np.float32)
        b.n("Add", [y, b.n("Conv", [d, b.c(corr)])], out=out)


def sparse(
    b: Builder,
    site: Site,
    x_f: str,
    y: str,
    out: str,
    hot: list,
    rank: int,
    kernel: tuple,
    scale: np.ndarray,
    correct: bool,
    opset: int,
) -> None:
    """Gather the raw activations of each hot pair, p = a1*w1 + a2*w2, then index lists of the saturated ones."""
    conv, axis = len(hot[0][0]) == 3, 1 if len(hot[0][0]) == 3 else rank - 1
    slots = sorted({s for h in hot for s in h[:2]})
    if conv:
        x_sel, bshape = taps(b, x_f, slots, *kernel), [1, -1, 1, 1]
    else:
        x_sel, bshape = b.n("Gather", [x_f, b.c([s[0] for s in slots])], axis=-1), [-1]
    pos = {s: i for i, s in enumerate(slots)}
    o_h, w1_h, w2_h = (np.array([h[i] for h in hot]) for i in (2, 3, 4))
    a1, a2 = (b.n("Gather", [x_sel, b.c([pos[h[i]] for h in hot])], axis=axis) for i in (0, 1))
    m1, m2 = (b.n("Mul", [a, b.c(v.reshape(bshape).astype(np.float32))]) for a, v in ((a1, w1_h), (a2, w2_h)))
    p = b.n("Add", [m1, m2])
    ap, lim = b.n("Abs", [p]), b.c(np.float32(I16_MAX))
    if conv:  # NonZero is slow on big inputs: first the (n, hot pair) planes that reach |p| > 32767
        red = (
            b.n("ReduceMax", [ap, b.c([2, 3])], keepdims=0)
            if opset >= 18
            else b.n("ReduceMax", [ap], axes=[2, 3], keepdims=0)
        )
        planes = b.n("Transpose", [b.n("NonZero", [b.n("Greater", [red, lim])])])  # [planes, 2]
        sub = b.n("NonZero", [b.n("Greater", [b.n("GatherND", [ap, planes]), lim])])  # [3, M]: plane, y, x
        nh = b.n("Transpose", [b.n("Gather", [planes, b.n("Gather", [sub, b.c(np.int64(0))], axis=0)], axis=0)])
        big = b.n("Concat", [nh, b.n("Slice", [sub, b.c([1]), b.c([3]), b.c([0])])], axis=0)  # [4, M]
    else:
        big = b.n("NonZero", [b.n("Greater", [ap, lim])])
    p_big = b.n("GatherND", [p, b.n("Transpose", [big])])
    d = b.n("Sub", [b.n("Clip", [p_big, b.c(np.float32(I16_MIN)), b.c(np.float32(I16_MAX))]), p_big])
    sat = b.n("Not", [b.n("Equal", [d, b.c(np.float32(0))])])  # drops p = -32768, which fits
    idx = b.n("Transpose", [b.n("Compress", [big, sat], axis=1)])  # [saturated pair sums, rank]
    hh = b.n("Gather", [idx, b.c(np.int64(axis))], axis=1)
    keep = np.ones(rank, np.int64)
    keep[axis] = 0
    o_idx = b.n("Unsqueeze", [b.n("Gather", [b.c(o_h), hh]), b.c([1])])
    site.idx = b.output(b.n("Add", [b.n("Mul", [idx, b.c(keep)]), b.n("Mul", [o_idx, b.c(1 - keep)])]))
    if correct:
        scale_h = b.n("Gather", [b.c(scale[o_h].astype(np.float32)), hh])
        upd = b.n("Mul", [b.n("Compress", [d, sat], axis=0), scale_h])
        b.n("ScatterND", [y, site.idx, upd], out=out, reduction="add")


def taps(b: Builder, x_f: str, slots: list, kh: int, kw: int, attrs: dict) -> str:
    """[N, len(slots), Ho, Wo]: the raw (padded) activation at each (ky, kx, c) tap for every output pixel."""
    (sh, sw), (dh, dw) = attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1])
    parts = []
    for ky, kx in sorted({s[:2] for s in slots}):
        v = b.n("Gather", [x_f, b.c([s[2] for s in slots if s[:2] == (ky, kx)])], axis=1)
        if (kh, kw, sh, sw) != (1, 1, 1, 1):
            ends = [-(kh - 1 - ky) * dh or _BIG, -(kw - 1 - kx) * dw or _BIG]
            v = b.n("Slice", [v, b.c([ky * dh, kx * dw]), b.c(ends), b.c([2, 3]), b.c([sh, sw])])
        parts.append(v)
    return b.n("Concat", parts, axis=1) if len(parts) > 1 else parts[0]
