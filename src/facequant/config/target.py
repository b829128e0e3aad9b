"""The CPU an INT8 answer is for: target=auto (this host), avx2, vnni or amx, the preset each sets for static U8S8
variants, and the arithmetic a variant is scored in when the target is not the host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TargetName = Literal["auto", "avx2", "vnni", "amx"]
Arithmetic = Literal["host", "exact", "avx2"]
EXACT = ("vnni", "amx")  # 32-bit accumulation of u8 x s8 products: never saturates
TARGETS = ("avx2", *EXACT)


class TargetError(ValueError):
    """A target setting is out of range."""


@dataclass(frozen=True)
class TargetConfig:
    """Which CPU the answer holds for. On avx2, ONNX Runtime's U8S8 kernels add pairs of u8 x s8 products in
    saturating 16-bit lanes (vpmaddubsw), so its preset keeps half-range (7-bit) weights in the nodes whose pair
    sums saturate on more than max_saturation of their outputs, and full range elsewhere; vnni and amx accumulate
    exactly and keep full range. host is the ISA of the machine running the job, filled in once by load_settings."""

    name: TargetName = "auto"
    max_saturation: float = 1e-3  # share of a node's outputs whose int16 pair sums saturated, on saturation_faces
    saturation_faces: int = 64  # calibration faces the avx2 preset measures saturation on
    kernel_cosine_floor: float = 0.999  # the recommendation refuses a variant below this mean cosine to its QDQ graph
    host: str = "other"

    def __post_init__(self) -> None:
        if not 0 <= self.max_saturation < 1:
            raise TargetError(f"target.max_saturation={self.max_saturation} must be a fraction in [0, 1), e.g. 1e-3")
        if not 0 < self.kernel_cosine_floor <= 1:
            raise TargetError(f"target.kernel_cosine_floor={self.kernel_cosine_floor} must be in (0, 1], e.g. 0.999")
        if self.saturation_faces < 1:
            raise TargetError(f"target.saturation_faces={self.saturation_faces} must be >= 1")

    @property
    def isa(self) -> str:
        """The target's ISA: the host's for auto."""
        return self.host if self.name == "auto" else self.name

    @property
    def arithmetic(self) -> Arithmetic:
        """How a variant is scored for this target: on the host's own kernels when they compute as the target's do,
        else by emulation: the QDQ graph in float for an exact target, saturating pair sums for avx2."""
        if self.isa == self.host or self.isa not in ("avx2", *EXACT):
            return "host"
        if self.isa == "avx2":
            return "avx2"
        return "host" if self.host in EXACT else "exact"

    @property
    def speed_measured(self) -> bool:
        """Speed is the host's: it stands for the target only when they are the same ISA."""
        return self.isa == self.host

    @property
    def saturates(self) -> bool:
        return self.isa == "avx2"

    @property
    def half_range(self) -> str:
        """The preset's quant.half_range for static U8S8 variants: 7 bits where pair sums saturate, else none."""
        return "saturating" if self.saturates else "none"
