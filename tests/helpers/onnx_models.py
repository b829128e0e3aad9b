"""Tiny ONNX models built by hand, small enough to quantize and run in milliseconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from facequant.config.sections import ModelConfig
from facequant.onnxmodel import InputSpec

SPEC = InputSpec("fixed")  # (x - 127.5) / 128, NCHW RGB, input "input"
SENSITIVE = "b.out"  # the tensor the synthetic model quantizes with a range 100x too wide


def synthetic(path, rng: np.random.Generator):
    """input (3x8x8) -> three Conv+Relu layers a, b, c -> GlobalAveragePool, with non-zero biases."""
    nodes, weights, previous = [], [], "input"
    for layer, inputs in (("a", 3), ("b", 4), ("c", 4)):
        weights += [
            numpy_helper.from_array((0.3 * rng.standard_normal((4, inputs, 3, 3))).astype(np.float32), f"{layer}.w"),
            numpy_helper.from_array((0.1 * rng.standard_normal(4)).astype(np.float32), f"{layer}.b"),
        ]
        nodes += [
            helper.make_node("Conv", [previous, f"{layer}.w", f"{layer}.b"], [f"{layer}.y"], name=layer, pads=[1] * 4),
            helper.make_node("Relu", [f"{layer}.y"], [f"{layer}.out"], name=f"{layer}.relu"),
        ]
        previous = f"{layer}.out"
    nodes.append(helper.make_node("GlobalAveragePool", [previous], ["output"], name="pool"))
    graph = helper.make_graph(
        nodes,
        "synthetic",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, 4, 1, 1])],
        weights,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def tiny_model(path: Path, shape: list, outputs: dict[str, list] | None = None, metadata: dict | None = None) -> Path:
    """A runnable embedding model: mean colour of each face times a fixed matrix, one input, given outputs."""
    layout_axes = [1, 2] if shape[3] == 3 else [2, 3]
    outputs = outputs or {"embedding": ["batch", 4]}
    weight = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    nodes = [helper.make_node("ReduceMean", ["data"], ["colour"], axes=layout_axes, keepdims=0)]
    nodes += [helper.make_node("MatMul", ["colour", "w"], [name]) for name in outputs]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, dims) for name, dims in outputs.items()],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, metadata or {})
    onnx.save(model, str(path))
    return path


def onnx_config(path: Path, **keys) -> ModelConfig:
    return ModelConfig(
        name="onnx", preprocess=keys.pop("preprocess", None), weights_dir="unused", path=str(path), **keys
    )


def nhwc_bgr(src: Path, target: Path) -> Path:
    """src's NCHW RGB graph behind a Transpose and a channel reversal: it takes NHWC BGR faces at 'image_bgr', and
    records nothing about its input, so its preprocessing and channel order must be given."""
    model = onnx.load(str(src))
    (image,) = model.graph.input
    size = image.type.tensor_type.shape.dim[2].dim_value
    nodes = [
        helper.make_node("Transpose", ["image_bgr"], ["bgr_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Gather", ["bgr_nchw", "bgr_to_rgb"], [image.name], axis=1),
        *model.graph.node,
    ]
    graph = helper.make_graph(
        nodes,
        "nhwc_bgr",
        [helper.make_tensor_value_info("image_bgr", TensorProto.FLOAT, ["batch", size, size, 3])],
        list(model.graph.output),
        [*model.graph.initializer, numpy_helper.from_array(np.array([2, 1, 0], np.int64), "bgr_to_rgb")],
    )
    onnx.save(helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version), str(target))
    return target


def unrunnable_model(path):
    """A valid ONNX graph the CPU EP has no kernel for: Conv on float64."""
    weight = numpy_helper.from_array(np.ones((2, 3, 3, 3)), "w")
    nodes = [
        helper.make_node("Cast", ["input"], ["x64"], to=TensorProto.DOUBLE),
        helper.make_node("Conv", ["x64", "w"], ["y"]),
        helper.make_node("Cast", ["y"], ["out"], to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 6, 6])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def colour_model(path: Path, size: int, nan_above: float | None = None, weights: str | None = None) -> Path:
    """An embedding model of aligned size x size NCHW faces: (mean colour @ w + 1), 4-d. With nan_above, times
    sqrt(nan_above - brightness), so faces brighter than that (after preprocessing) get NaN embeddings; with
    weights, w is stored in that external-data file beside the model."""
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["colour"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["colour", "w"], ["mixed"]),
        helper.make_node("Add", ["mixed", "one"], ["raw" if nan_above is not None else "embedding"]),
    ]
    initializers = [
        numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) / 10 - 0.5, "w"),
        numpy_helper.from_array(np.ones(4, np.float32), "one"),
    ]
    if nan_above is not None:
        nodes += [
            helper.make_node("ReduceMean", ["colour"], ["brightness"], axes=[1], keepdims=1),
            helper.make_node("Sub", ["limit", "brightness"], ["room"]),
            helper.make_node("Sqrt", ["room"], ["gate"]),  # NaN where the face is brighter than the limit
            helper.make_node("Mul", ["raw", "gate"], ["embedding"]),
        ]
        initializers.append(numpy_helper.from_array(np.array(nan_above, np.float32), "limit"))
    graph = helper.make_graph(
        nodes,
        "colour",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 4])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if weights is None:
        onnx.save(model, str(path))
    else:
        onnx.save(model, str(path), save_as_external_data=True, location=weights, size_threshold=0)
    return path
