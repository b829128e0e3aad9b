"""Any face-embedding ONNX file: how faces are fed to it, inferred from its shapes and metadata, checked against it.

facequant's own exports are ONNX files too: NCHW RGB faces at input 'input', the embedding at output 'embedding'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

INPUT, OUTPUT = "input", "embedding"  # the tensor names of facequant's own exports
FIXED_MEAN, FIXED_STD = (127.5,), (128.0,)  # facenet-pytorch's fixed standardisation
Layout = Literal["NCHW", "NHWC"]
ChannelOrder = Literal["RGB", "BGR"]
CHANNEL_AXIS: dict[str, int] = {"NCHW": 1, "NHWC": 3}


class OnnxModelError(ValueError):
    """A model=onnx setting contradicts the file, or the file cannot be fed aligned faces as it is."""


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

    def contract(self, size: int) -> str:
        """What a deployment must feed: the aligned face, its conversion to the input tensor, and the output."""
        scale = (
            "Sandberg's per-image standardisation"
            if self.preprocess == "per_image"
            else (f"(x - {','.join(f'{v:g}' for v in self.mean)}) / {','.join(f'{v:g}' for v in self.std)}")
        )
        out = self.output or "the first output"
        return (
            f"MTCNN-aligned {size}x{size} {self.channel_order} face, float32 {self.layout} tensor '{self.input}', "
            f"{scale}; embedding: {out}, compared by cosine similarity"
        )

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


@dataclass(frozen=True)
class Tensor:
    """A graph input or output: its name, element type and shape (int: fixed, str: named, None: unknown)."""

    name: str
    elem_type: int
    shape: tuple[int | str | None, ...] | None  # None: no shape in the file

    def __str__(self) -> str:
        dims = "?" if self.shape is None else ",".join("?" if d is None else str(d) for d in self.shape)
        return f"'{self.name}' [{dims}]"


@dataclass(frozen=True)
class Interface:
    """What the file tells about feeding it, without running it."""

    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    metadata: dict[str, str]
    opset: int
    producer: str


def _tensor(value: onnx.ValueInfoProto) -> Tensor:
    kind = value.type.tensor_type
    if not kind.HasField("shape"):
        return Tensor(value.name, kind.elem_type, None)
    dims = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param or None for d in kind.shape.dim)
    return Tensor(value.name, kind.elem_type, dims)


def read_interface(path: Path) -> Interface:
    """The graph's inputs (initializers excluded: they have defaults), outputs, metadata, opset and producer."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, onnx its own types
        raise OnnxModelError(f"model.path={path} is not a readable ONNX file: {exc}") from exc
    weights = {i.name for i in model.graph.initializer}
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return Interface(
        tuple(_tensor(v) for v in model.graph.input if v.name not in weights),
        tuple(_tensor(v) for v in model.graph.output),
        {p.key: p.value for p in model.metadata_props},
        opset,
        f"{model.producer_name} {model.producer_version}".strip() or "unknown producer",
    )


@dataclass(frozen=True)
class Resolved:
    """Every model=onnx key, as given or inferred from the file, and consistent with it."""

    input_name: str
    layout: str
    input_size: int
    channel_order: str
    output_name: str
    embedding_size: int | None  # None: the output's size is not in the file; the first run tells it
    preprocess: str


def _listing(tensors: tuple[Tensor, ...]) -> str:
    return ", ".join(map(str, tensors))


def _input(path: Path, iface: Interface, name: str | None) -> Tensor:
    """The image input: the file's only input, and the named one if a name is given."""
    if len(iface.inputs) != 1:
        raise OnnxModelError(
            f"{path} has {len(iface.inputs)} inputs ({_listing(iface.inputs)}); facequant feeds a model one image "
            "tensor, so it needs a file with exactly one input"
        )
    tensor = iface.inputs[0]
    if name is not None and name != tensor.name:
        raise OnnxModelError(
            f"model.input_name={name!r} is not an input of {path}; its inputs: {_listing(iface.inputs)}. "
            f"Use model.input_name={tensor.name}, or leave it out to infer it."
        )
    if tensor.elem_type != onnx.TensorProto.FLOAT:
        kind = onnx.TensorProto.DataType.Name(tensor.elem_type)
        raise OnnxModelError(f"input {tensor} of {path} takes {kind}; facequant feeds float32 normalised faces")
    if tensor.shape is None or len(tensor.shape) != 4:
        raise OnnxModelError(
            f"input {tensor} of {path} is not a batch of images; facequant feeds rank-4 NCHW or NHWC tensors"
        )
    if isinstance(tensor.shape[0], int):
        raise OnnxModelError(
            f"input {tensor} of {path} has a fixed batch size of {tensor.shape[0]}; facequant embeds, calibrates and "
            "times faces in batches. Export the model with a dynamic batch axis, e.g. torch.onnx.export(..., "
            f"dynamic_axes={{'{tensor.name}': {{0: 'batch'}}}})."
        )
    return tensor


def _layout(tensor: Tensor, path: Path, layout: str | None) -> str:
    """NCHW when the input has 3 channels at axis 1, NHWC at axis 3; a given layout must agree."""
    assert tensor.shape is not None
    fits = [name for name, axis in CHANNEL_AXIS.items() if tensor.shape[axis] == 3]
    if layout is None:
        if len(fits) != 1:
            raise OnnxModelError(
                f"the layout of input {tensor} of {path} cannot be told from its shape (3 channels at axis 1 is "
                "NCHW, at axis 3 NHWC); give model.layout=NCHW or model.layout=NHWC"
            )
        return fits[0]
    channels = tensor.shape[CHANNEL_AXIS[layout]]
    if fits and layout not in fits:
        raise OnnxModelError(
            f"model.layout={layout} contradicts input {tensor} of {path}: its 3 channels are at axis "
            f"{CHANNEL_AXIS[fits[0]]}, which is {fits[0]}. Use model.layout={fits[0]}, or leave model.layout out to "
            "infer it."
        )
    if isinstance(channels, int) and channels != 3:
        raise OnnxModelError(f"input {tensor} of {path} takes {channels} channels in {layout}; faces have 3 (RGB)")
    return layout


def _size(tensor: Tensor, path: Path, layout: str, given: int | None) -> int:
    """The square input size from the shape; a given model.input_size must agree, and is needed if the size is free."""
    assert tensor.shape is not None
    spatial = tensor.shape[2:] if layout == "NCHW" else tensor.shape[1:3]
    fixed = {d for d in spatial if isinstance(d, int)}
    if len(fixed) > 1:
        raise OnnxModelError(f"input {tensor} of {path} is not square; facequant's aligned faces are square crops")
    if not fixed:
        if given is None:
            raise OnnxModelError(
                f"input {tensor} of {path} takes any image size; give the size the model was trained at, e.g. "
                "model.input_size=112"
            )
        return given
    size = fixed.pop()
    if given is not None and given != size:
        raise OnnxModelError(
            f"model.input_size={given} contradicts input {tensor} of {path} ({size}x{size}); leave model.input_size "
            "out to infer it"
        )
    return size


def _output(path: Path, iface: Interface, name: str | None) -> tuple[str, int | None]:
    """The embedding output (the only one, or the named one) and its size if the shape fixes it."""
    if name is None and len(iface.outputs) != 1:
        raise OnnxModelError(
            f"{path} has {len(iface.outputs)} outputs ({_listing(iface.outputs)}); say which is the embedding with "
            "model.output_name=<name>"
        )
    named = [t for t in iface.outputs if name in (None, t.name)]
    if not named:
        raise OnnxModelError(
            f"model.output_name={name!r} is not an output of {path}; its outputs: {_listing(iface.outputs)}"
        )
    tensor = named[0]
    if tensor.shape is not None and len(tensor.shape) != 2:
        raise OnnxModelError(f"output {tensor} of {path} is not a batch of embeddings, shape [batch, size]")
    size = None if tensor.shape is None else tensor.shape[1]
    return tensor.name, size if isinstance(size, int) else None


def _recorded(metadata: dict[str, str]) -> dict[str, str]:
    """What facequant's own metadata records that the shapes may not tell."""
    found = {}
    if metadata.get("facequant.preprocess") in ("fixed", "per_image"):
        found["preprocess"] = metadata["facequant.preprocess"]
    order = [word for word in metadata.get("facequant.input", "").split() if word in ("RGB", "BGR")]
    if order:
        found["channel_order"] = order[0]
    if metadata.get("facequant.embedding_size", "").isdigit():
        found["embedding_size"] = metadata["facequant.embedding_size"]
    return found


def _given_or_recorded(path: Path, key: str, given: str | None, recorded: str | None, hint: str) -> str:
    """A setting the shapes cannot tell: given, or recorded in the file's metadata; the two must agree."""
    if given is None and recorded is None:
        raise OnnxModelError(f"model.{key} is required: {path} does not record it; give {hint}")
    if given is not None and recorded is not None and given != recorded:
        raise OnnxModelError(
            f"model.{key}={given} contradicts {path}, whose facequant metadata records {recorded}; leave model.{key} "
            "out to use it"
        )
    return str(given or recorded)


def resolve(
    path: Path,
    *,
    input_name: str | None,
    layout: str | None,
    input_size: int | None,
    channel_order: str | None,
    output_name: str | None,
    embedding_size: int | None,
    preprocess: str | None,
) -> Resolved:
    """Fill every model=onnx key the file's shapes and metadata tell, and check the given ones against the file."""
    iface = read_interface(path)
    tensor = _input(path, iface, input_name)
    found_layout = _layout(tensor, path, layout)
    output, size = _output(path, iface, output_name)
    recorded = _recorded(iface.metadata)
    if size is None and "embedding_size" in recorded:
        size = int(recorded["embedding_size"])
    if embedding_size is not None and size not in (None, embedding_size):
        raise OnnxModelError(
            f"model.embedding_size={embedding_size} contradicts {path}, whose output '{output}' is {size}-d; leave "
            "model.embedding_size out to infer it"
        )
    return Resolved(
        input_name=tensor.name,
        layout=found_layout,
        input_size=_size(tensor, path, found_layout, input_size),
        channel_order=_given_or_recorded(
            path, "channel_order", channel_order, recorded.get("channel_order"), "model.channel_order=RGB or BGR"
        ),
        output_name=output,
        embedding_size=size or embedding_size,
        preprocess=_given_or_recorded(
            path,
            "preprocess",
            preprocess,
            recorded.get("preprocess"),
            "model.preprocess=fixed (with model.mean and model.std) or model.preprocess=per_image",
        ),
    )


def check_embeddings(outputs: np.ndarray, faces: int, path: Path, expected: int | None) -> int:
    """The embedding size of a first run's output, which must be one embedding per face."""
    if outputs.ndim != 2 or outputs.shape[0] != faces:
        raise OnnxModelError(
            f"{path} returned shape {list(outputs.shape)} for {faces} faces; an embedding model returns [faces, size]"
        )
    if expected is not None and outputs.shape[1] != expected:
        raise OnnxModelError(f"model.embedding_size={expected} but {path} returned {outputs.shape[1]}-d embeddings")
    return int(outputs.shape[1])
