"""Which tensors INT8 hurts: every quantized activation's and weight's SQNR against FP32, from ONNX Runtime's
qdq_loss_debug, on held-out faces that neither calibration nor evaluation uses."""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from onnx import numpy_helper
from onnxruntime.quantization.qdq_loss_debug import _TENSOR_SAVE_POSTFIX as SAVED  # the augmented outputs' suffix
from onnxruntime.quantization.qdq_loss_debug import (
    compute_activation_error,
    compute_weight_error,
    create_activation_matching,
    create_weight_matching,
    modify_model_output_intermediate_tensors,
)

from facequant.onnxmodel import InputSpec
from facequant.plots import plot_sensitivity
from facequant.runtime import sessions as runtime
from facequant.runtime.sessions import preprocess
from facequant.schema import SENSITIVITY_COLUMNS, SENSITIVITY_CSV, SENSITIVITY_PNG, Metric

log = logging.getLogger(__name__)

# Faces per collect_activations call: it keeps every float tensor of both models, ~80 MB a face for FaceNet; 8 peak at
# ~2.4 GB RSS (16: 3.7 GB).
BATCH = 8
WORST = 5  # tensors the report names
EPS = float(np.finfo(float).eps)  # ORT's floor on both norms of its SQNR


@dataclass(frozen=True)
class Energy:
    """Sums of squares of a reference tensor and of its error; summed over batches they give ORT's SQNR of the
    concatenated batches without holding them all (~16 GB for 200 faces)."""

    signal: float
    noise: float

    def __add__(self, other: Energy) -> Energy:
        return Energy(self.signal + other.signal, self.noise + other.noise)

    @property
    def sqnr_db(self) -> float:
        """20 log10(|x| / |x - y|), each norm floored at eps as ORT's compute_signal_to_quantization_noice_ratio."""
        return 10 * math.log10(max(self.signal, EPS**2) / max(self.noise, EPS**2))


def energy(reference: Sequence[np.ndarray], test: Sequence[np.ndarray]) -> Energy:
    """compute_activation_error's err_func: the energies of one batch's tensors, in float32 as ORT's SQNR (float64
    is 6x slower here and moves no SQNR by more than 1e-3 dB)."""
    ref = np.concatenate([np.ravel(t) for t in reference])
    err = ref - np.concatenate([np.ravel(t) for t in test])
    return Energy(float(np.dot(ref, ref)), float(np.dot(err, err)))


@dataclass(frozen=True)
class TensorError:
    """One activation's energies against FP32's tensor (the error accumulated up to it: ORT's `xmodel_err`) and
    against its own value before QuantizeLinear (its quantization alone: ORT's `qdq_err`)."""

    fp32: Energy
    local: Energy

    def __add__(self, other: TensorError) -> TensorError:
        return TensorError(self.fp32 + other.fp32, self.local + other.local)


def fused_relus(fp32: onnx.GraphProto, qdq: onnx.GraphProto) -> set[str]:
    """Tensors a Relu produces in FP32 but not in the QDQ model: the quantizer folds such a Relu into the range
    [0, max], so the tensor before QuantizeLinear still holds the negatives the Relu removes."""
    qdq_ops = {out: node.op_type for node in qdq.node for out in node.output}
    return {out for node in fp32.node if node.op_type == "Relu" for out in node.output if qdq_ops.get(out) != "Relu"}


@dataclass(frozen=True)
class Activations:
    """Per quantized activation, its errors over the faces; and the QDQ model's embeddings of the faces with its
    graph run in float as written, which the kernel check compares the runtime's integer kernels with."""

    errors: dict[str, TensorError]
    written: np.ndarray


def _collect(sess: ort.InferenceSession, inputs: np.ndarray, output: str | None) -> tuple[dict, np.ndarray]:
    """collect_activations' dict for one batch, from a session built once (it builds one a call, ~0.4 s for
    FaceNet), and the model's own output."""
    names = [out.name for out in sess.get_outputs()]
    values = sess.run(None, {sess.get_inputs()[0].name: inputs})
    saved = {n[: -len(SAVED)]: [v] for n, v in zip(names, values, strict=True) if n.endswith(SAVED)}
    return saved, values[names.index(output) if output else 0]


def activation_errors(
    fp32: Path, qdq: Path, faces: np.ndarray, spec: InputSpec, fused: set[str], batch: int = BATCH
) -> Activations:
    """Per quantized activation of the QDQ model, its errors over the faces, fed batch by batch (fused: see
    fused_relus; their tensor before quantization is compared after the Relu), as collect_activations runs the
    models: unoptimised."""
    totals: dict[str, TensorError] = {}
    written = []
    with tempfile.TemporaryDirectory(prefix="facequant-sensitivity-") as tmp:
        float_aug, qdq_aug = Path(tmp) / "fp32.onnx", Path(tmp) / "qdq.onnx"
        modify_model_output_intermediate_tensors(str(fp32), str(float_aug))
        modify_model_output_intermediate_tensors(str(qdq), str(qdq_aug))
        float_sess, qdq_sess = (runtime.session(path, level="ORT_DISABLE_ALL") for path in (float_aug, qdq_aug))
        for start in range(0, len(faces), batch):
            inputs = preprocess(faces[start : start + batch], spec)
            quantized, embedding = _collect(qdq_sess, inputs, spec.output)
            written.append(embedding)
            matching = create_activation_matching(quantized, _collect(float_sess, inputs, spec.output)[0])
            for name in fused & matching.keys():
                matching[name]["pre_qdq"] = [np.maximum(t, 0) for t in matching[name]["pre_qdq"]]
            compared = {name: match for name, match in matching.items() if "float" in match}
            for name, errors in compute_activation_error(compared, energy).items():
                step = TensorError(errors["xmodel_err"], errors["qdq_err"])
                totals[name] = totals[name] + step if name in totals else step
    return Activations(totals, np.concatenate(written))


def widened(qdq: onnx.ModelProto) -> onnx.ModelProto:
    """The QDQ model with its 8-bit weights and zero points as int32 (same values): create_weight_matching subtracts
    the zero point in the weights' own dtype, which wraps for uint8 weights (U8U8 then reads about -20 dB)."""
    model = onnx.ModelProto()
    model.CopyFrom(qdq)
    initializers = {init.name: init for init in model.graph.initializer}
    eight_bit = {onnx.TensorProto.UINT8, onnx.TensorProto.INT8}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in initializers:
            continue  # activations are dequantized at run time, not here
        for name in (node.input[0], *node.input[2:3]):
            init = initializers[name]
            if init.data_type in eight_bit:
                init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.int32), name))
    return model


def weight_sqnr(fp32: Path, qdq: onnx.ModelProto) -> dict[str, float]:
    """Per quantized weight (and bias), the SQNR of its dequantized values against the FP32 initializer."""
    with tempfile.TemporaryDirectory(prefix="facequant-weights-") as tmp:
        wide = Path(tmp) / "qdq.onnx"
        onnx.save(widened(qdq), str(wide))
        return compute_weight_error(create_weight_matching(str(fp32), str(wide)))


def sensitivity_table(
    fp32: onnx.GraphProto, activations: dict[str, TensorError], weights: dict[str, float]
) -> pd.DataFrame:
    """One row per quantized tensor (SENSITIVITY_COLUMNS), placed at its node in the FP32 graph, in graph order."""
    producer = {out: (i + 1, node) for i, node in enumerate(fp32.node) for out in node.output}
    reader = {}
    for i, node in enumerate(fp32.node):
        for slot, name in enumerate(node.input):
            reader.setdefault(name, (i + 1, node, slot))
    rows = []
    for tensor, error in activations.items():
        position, node = producer.get(tensor, (0, None))  # not produced by a node: the model input
        op = (node.name, node.op_type) if node else ("", "")
        rows.append(("activation", *op, tensor, error.fp32.sqnr_db, error.local.sqnr_db, position))
    for tensor, sqnr in weights.items():  # a weight's own quantization is its whole error against FP32
        position, node, slot = reader[tensor]
        rows.append(("bias" if slot == 2 else "weight", node.name, node.op_type, tensor, sqnr, sqnr, position))
    table = pd.DataFrame(rows, columns=list(SENSITIVITY_COLUMNS))
    return table.sort_values(["position", "kind", "tensor"], ignore_index=True)


@dataclass(frozen=True)
class Measured:
    table: pd.DataFrame  # one row per quantized tensor
    written: np.ndarray  # the QDQ model's embeddings of the faces, its graph run in float (Activations.written)


def measure(fp32: Path, qdq: Path, faces: np.ndarray, spec: InputSpec) -> Measured:
    """The sensitivity table of a QDQ model against the FP32 model it was quantized from (same tensor names)."""
    fp32_graph, qdq_model = onnx.load(str(fp32)).graph, onnx.load(str(qdq))
    found = activation_errors(fp32, qdq, faces, spec, fused_relus(fp32_graph, qdq_model.graph))
    return Measured(sensitivity_table(fp32_graph, found.errors, weight_sqnr(fp32, qdq_model)), found.written)


def activations(table: pd.DataFrame) -> pd.DataFrame:
    return table[table.kind == "activation"]


def worst(table: pd.DataFrame, column: str = "sqnr_db", count: int = WORST) -> pd.DataFrame:
    """The activations with the lowest SQNR in column (against FP32, or local), worst first."""
    return activations(table).nsmallest(count, column)


def sensitivity_metrics(table: pd.DataFrame) -> dict[Metric, float]:
    acts, weights = activations(table), table[table.kind == "weight"]
    return {
        Metric.SQNR_MIN_DB: float(acts.sqnr_db.min()),
        Metric.SQNR_MEDIAN_DB: float(acts.sqnr_db.median()),
        Metric.LOCAL_SQNR_MIN_DB: float(acts.local_sqnr_db.min()),
        Metric.WEIGHT_SQNR_MIN_DB: float(weights.sqnr_db.min()),
    }


def artifacts(table: pd.DataFrame, title: str, out: Path) -> list[Path]:
    """sensitivity.csv and its plot along the depth, written to out."""
    csv = out / SENSITIVITY_CSV
    table.to_csv(csv, index=False, float_format="%.4f")
    return [csv, plot_sensitivity(table, worst(table), title, out / SENSITIVITY_PNG)]


def summary(table: pd.DataFrame) -> str:
    """The worst activations in one line, for the job's log."""
    tensors = ", ".join(f"{row.tensor} {row.sqnr_db:.1f} dB" for row in worst(table).itertuples())
    local = ", ".join(f"{row.tensor} {row.local_sqnr_db:.1f} dB" for row in worst(table, "local_sqnr_db").itertuples())
    return f"{len(table)} quantized tensors; worst against FP32: {tensors}; worst own quantization: {local}"
