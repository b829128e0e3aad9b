"""AVX2 U8S8 arithmetic on raw integers: which K elements MLAS pairs in one vpmaddubsw, which weight pairs can
saturate at all, the exact product with its int16 clipping, and per-node saturation counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

I16_MIN, I16_MAX = -32768, 32767


def mlas_k_order(w: np.ndarray) -> np.ndarray:
    """[O, C, kh, kw] conv weights of one group -> [O, K], K ordered (kh, kw, C) with C fastest, as MLAS reads them."""
    return w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)


def pairs_of(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The vpmaddubsw operands (k = 2j, k = 2j + 1) along the last axis; an odd K gets MLAS's zero padding."""
    m = m.astype(np.int64)
    if m.shape[-1] % 2:
        m = np.concatenate([m, np.zeros((*m.shape[:-1], 1), np.int64)], axis=-1)
    return m[..., 0::2], m[..., 1::2]


def saturating_pairs_possible(w_ok: np.ndarray) -> np.ndarray:
    """[O, ceil(K/2)] mask of s8 weight pairs whose int16 sum can saturate for some u8 activations ("hot" pairs).

    |a1*w1 + a2*w2| <= 255*(|w1| + |w2|), so |w1| + |w2| <= 128 is safe (255*128 = 32640 < 32767); with opposite signs
    |p| <= max(a1*|w1|, a2*|w2|) <= 32640 too. Only same-sign pairs with |w1| + |w2| > 128 remain.
    """
    w1, w2 = pairs_of(w_ok)
    return (np.abs(w1) + np.abs(w2) > 128) & (w1 * w2 > 0)


def saturating_matmul(a_mk: np.ndarray, w_ok: np.ndarray) -> np.ndarray:
    """[M, O] int64 sum over j of clip16(a[2j]*w[2j] + a[2j+1]*w[2j+1]), raw u8 rows a and raw s8 rows w.

    Computed as the exact product plus a sparse correction over the hot pairs. Zero points do not belong here: MLAS
    subtracts them afterwards in int32, so the int16 pair sums are of the raw values.
    """
    exact = a_mk.astype(np.int64) @ w_ok.astype(np.int64).T
    o, j = np.nonzero(saturating_pairs_possible(w_ok))
    (a1, a2), (w1, w2) = pairs_of(a_mk), pairs_of(w_ok)
    p = a1[:, j] * w1[o, j] + a2[:, j] * w2[o, j]
    corr = np.zeros_like(exact)
    np.add.at(corr.T, o, (np.clip(p, I16_MIN, I16_MAX) - p).T)
    return exact + corr


@dataclass
class SaturationStats:
    """Counts for one emulated node: output values (int32 accumulators) and the int16 pair sums behind them."""

    op_type: str
    outputs: int = 0
    outputs_saturated: int = 0  # output values with at least one saturated pair sum
    pair_sums: int = 0  # outputs x ceil(K/2)
    pair_sums_saturated: int = 0

    @property
    def outputs_fraction(self) -> float:
        return self.outputs_saturated / max(self.outputs, 1)

    @property
    def pair_sums_fraction(self) -> float:
        return self.pair_sums_saturated / max(self.pair_sums, 1)

    def __add__(self, other: SaturationStats) -> SaturationStats:  # accumulate batches
        counts = ("outputs", "outputs_saturated", "pair_sums", "pair_sums_saturated")
        return SaturationStats(self.op_type, *(getattr(self, c) + getattr(other, c) for c in counts))
