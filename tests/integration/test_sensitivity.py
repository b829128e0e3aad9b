"""Per-tensor sensitivity on the real LFW held-out faces, and the rows a real static job of the sweep logs."""

from __future__ import annotations

import math

import mlflow
import pandas as pd
import pytest

from facequant.data.lfw import (
    DatasetError,
    calibration_images,
    held_out_images,
    identity_of,
    pair_images,
    split_identities,
)
from helpers import logged_model


def test_held_out_faces_are_disjoint_from_calibration_and_every_pair(lfw):
    calibration = calibration_images(lfw, 500, seed=0)
    held_out = held_out_images(lfw, 300, 0, calibration)
    assert len(set(held_out)) == 300 and held_out == held_out_images(lfw, 300, 0, calibration)
    assert not set(held_out) & set(calibration) and not set(held_out) & set(pair_images(lfw.pairs))
    assert held_out != held_out_images(lfw, 300, 1, calibration)  # the seed draws them
    with pytest.raises(DatasetError, match=r"sensitivity_faces=5100 but only 5032 held-out images"):
        held_out_images(lfw, 5100, 0, calibration)
    # protocol=all: from the reserved calibration identities, so no evaluated identity is among them
    split = split_identities(lfw.images, 700, seed=0)
    calibration = calibration_images(lfw, 500, 0, split.calibration)
    held_out = held_out_images(lfw, 200, 0, calibration, split.calibration)
    assert set(held_out) <= set(split.calibration) and not set(held_out) & set(calibration)
    assert not {identity_of(i) for i in held_out} & {identity_of(i) for i in split.evaluation}


def test_a_static_job_logs_one_row_per_quantized_tensor_of_its_model(sweep):
    workdir, df = sweep
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    for _, run in df.iterrows():
        logged = {a.path for a in client.list_artifacts(run.run_id)}
        if run["params.quant.mode"] != "static":
            assert "sensitivity.csv" not in logged and math.isnan(run.get("metrics.sqnr_min_db", math.nan))
            continue
        assert {"sensitivity.csv", "sensitivity.png"} <= logged and run["metrics.time_sensitivity_s"] > 0
        table = pd.read_csv(
            client.download_artifacts(run.run_id, "sensitivity.csv", str(workdir)), keep_default_na=False
        )
        model = logged_model(run)
        weights = {i.name for i in model.graph.initializer}
        quantize = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
        dequantize_weights = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights]
        acts = table[table.kind == "activation"]
        assert len(acts) == len(quantize) and len(table) - len(acts) == len(dequantize_weights)
        assert acts.tensor.is_unique and (acts.position > 0).sum() == len(acts) - 1  # all but the model input
        assert 10 < acts.sqnr_db.min() <= acts.sqnr_db.median() < 60
        assert run["metrics.sqnr_min_db"] == pytest.approx(acts.sqnr_db.min(), abs=1e-3)
        assert run["metrics.sqnr_median_db"] == pytest.approx(acts.sqnr_db.median(), abs=1e-3)
        assert run["params.sensitivity_faces"] == "24"
        kernels = run["metrics.int8_kernel_cosine_min"], run["metrics.int8_kernel_cosine_mean"]
        assert 0.5 < kernels[0] <= kernels[1] <= 1 + 1e-6
        inputs = mlflow.get_run(run.run_id).inputs.dataset_inputs
        assert "lfw-sensitivity" in {i.dataset.name for i in inputs}
