"""A frozen TensorFlow GraphDef read without TensorFlow: its nodes and the values of its Const tensors."""

from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from facequant.models.weights import WeightsError

_DTYPES = {1: np.float32, 3: np.int32}  # TensorFlow DT_FLOAT, DT_INT32: all the graph holds

# Only the fields read here, with the field numbers of tensorflow/core/framework/{graph,node_def,attr_value,tensor,
# tensor_shape}.proto; the parser skips all others (versions, device, the other AttrValue kinds).
_MESSAGES: dict[str, list[tuple[str, int, str]]] = {
    "GraphDef": [("node", 1, "NodeDef*")],
    "NodeDef": [("name", 1, "string"), ("op", 2, "string"), ("input", 3, "string*"), ("attr", 5, "NodeDef.AttrEntry*")],
    "AttrValue": [("f", 4, "float"), ("b", 5, "bool"), ("tensor", 8, "TensorProto")],
    "TensorProto": [
        ("dtype", 1, "int32"),
        ("tensor_shape", 2, "TensorShapeProto"),
        ("tensor_content", 4, "bytes"),
        ("float_val", 5, "float*"),
        ("int_val", 7, "int32*"),
    ],
    "TensorShapeProto": [("dim", 2, "Dim*")],
    "Dim": [("size", 1, "int64")],
}


@functools.cache
def graph_def_class() -> type[Message]:
    """TensorFlow's GraphDef as a protobuf class built from descriptors at run time.

    Chosen over a hand-written wire-format reader: protobuf's own (C) parser decodes the 94 MB graph in about half a
    second and handles packed and unpacked repeated values and unknown fields; declaring the dozen fields read here
    is all it needs, with neither TensorFlow nor a .proto compiler.
    """
    kinds = descriptor_pb2.FieldDescriptorProto
    scalars = {k: getattr(kinds, f"TYPE_{k.upper()}") for k in ("string", "bytes", "float", "bool", "int32", "int64")}
    file = descriptor_pb2.FileDescriptorProto(name="facequant_tf_graph.proto", package="facequant.tf", syntax="proto3")

    def add_fields(message: descriptor_pb2.DescriptorProto, fields: list[tuple[str, int, str]]) -> None:
        for name, number, kind in fields:
            base = kind.rstrip("*")
            label = kinds.LABEL_REPEATED if kind.endswith("*") else kinds.LABEL_OPTIONAL
            field = message.field.add(name=name, number=number, label=label)
            if base in scalars:
                field.type = scalars[base]
            else:
                field.type, field.type_name = kinds.TYPE_MESSAGE, f".facequant.tf.{base}"

    for name, fields in _MESSAGES.items():
        add_fields(file.message_type.add(name=name), fields)
    node_def = next(m for m in file.message_type if m.name == "NodeDef")
    entry = node_def.nested_type.add(name="AttrEntry")  # map<string, AttrValue> attr
    entry.options.map_entry = True
    add_fields(entry, [("key", 1, "string"), ("value", 2, "AttrValue")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("facequant.tf.GraphDef"))


def _tensor(node: Any) -> np.ndarray:
    """A Const node's value, from tensor_content or from its repeated values (the last one repeated to fill)."""
    proto = node.attr["value"].tensor
    dtype = _DTYPES.get(proto.dtype)
    if dtype is None:
        raise WeightsError(f"Const {node.name} has TensorFlow dtype {proto.dtype}; only float32 and int32 are read")
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    count = int(np.prod(shape))
    if proto.tensor_content:
        values = np.frombuffer(proto.tensor_content, dtype=np.dtype(dtype).newbyteorder("<"))
    else:
        values = np.asarray(proto.float_val if dtype is np.float32 else proto.int_val, dtype)
        if 0 < values.size < count:
            values = np.concatenate([values, np.repeat(values[-1:], count - values.size)])
    if values.size != count:
        raise WeightsError(f"Const {node.name} has {values.size} values for shape {shape}")
    return values.reshape(shape).astype(dtype)


def _source(name: str) -> str:
    return name.removeprefix("^").split(":")[0]


class FrozenGraph:
    """A frozen GraphDef's nodes and decoded Const tensors; remembers which Consts the conversion used."""

    def __init__(self, path: Path):
        graph = graph_def_class()()
        try:
            graph.ParseFromString(path.read_bytes())
        except DecodeError as exc:
            raise WeightsError(f"{path} is not a TensorFlow GraphDef: {exc}") from exc
        self.nodes = {n.name: n for n in graph.node}
        self.consts = {n.name: _tensor(n) for n in graph.node if n.op == "Const"}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        for n in graph.node:
            for src in n.input:
                if not src.startswith("^"):
                    self.consumers[_source(src)].append(n)
        self.used: set[str] = set()

    def node(self, name: str, op: str) -> Any:
        found = self.nodes.get(name)
        if found is None or found.op != op:
            raise WeightsError(f"graph has no {op} node {name}")
        return found

    def input_const(self, node: Any, index: int) -> np.ndarray:
        name = _source(node.input[index])
        if name not in self.consts:
            raise WeightsError(f"input {index} of graph node {node.name} is {name}, not a Const")
        self.used.add(name)
        return self.consts[name]

    def folded_conv(self, scope: str) -> tuple[np.ndarray, np.ndarray]:
        """Kernel (HWIO) of scope/Conv2D and the bias of the one BiasAdd applied to its output."""
        conv = self.node(f"{scope}/Conv2D", "Conv2D")
        adds = [n for n in self.consumers[conv.name] if n.op == "BiasAdd"]
        if len(adds) != 1:
            raise WeightsError(f"graph node {conv.name} feeds {len(adds)} BiasAdd nodes, expected 1")
        return self.input_const(conv, 1), self.input_const(adds[0], 1)
