"""How faces are fed to an ONNX face model: preprocessing, layout, channel order and the tensors' names.

facequant's own exports take NCHW RGB faces at input 'input' and give the embedding at output 'embedding'.
"""

from __future__ import annotations

from dataclasses import dataclass

INPUT, OUTPUT = "input", "embedding"  # the tensor names of facequant's own exports
FIXED_MEAN, FIXED_STD = (127.5,), (128.0,)  # facenet-pytorch's fixed standardisation


@dataclass(frozen=True)
class InputSpec:
    """How aligned uint8 RGB faces become a model's input tensor, and which output holds the embedding."""

    preprocess: str  # fixed: (x - mean) / std; per_image: Sandberg's prewhiten
    mean: tuple[float, ...] = FIXED_MEAN  # one value, or one per channel in the model's channel order
    std: tuple[float, ...] = FIXED_STD
    layout: str = "NCHW"
    channel_order: str = "RGB"
    input: str = INPUT
    output: str | None = None  # None: the model's first output

    def describe(self) -> str:
        """The preprocessing, then what differs from facequant's own exports, e.g. 'fixed mean=127.5 std=127.5 NHWC
        BGR'; it is logged and keys every cached model and score, so another feeding never reuses them."""
        parts = [self.preprocess]
        if self.preprocess == "fixed" and (self.mean, self.std) != (FIXED_MEAN, FIXED_STD):
            parts.append(f"mean={','.join(f'{v:g}' for v in self.mean)} std={','.join(f'{v:g}' for v in self.std)}")
        parts += [v for v in (self.layout, self.channel_order) if v not in ("NCHW", "RGB")]
        if self.output not in (None, OUTPUT):
            parts.append(f"output={self.output}")
        return " ".join(parts)
