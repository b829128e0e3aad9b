"""A store with one finished sweep parent, for src/compare.py to report on runs logged by hand."""

from __future__ import annotations

import mlflow
import pytest

from facequant.schema import Tag


@pytest.fixture
def fake_sweep(store_uri, tmp_path):
    """(client, experiment id, parent run id) of a finished sweep in tmp_path/mlflow.db, with no job runs yet."""
    mlflow.set_tracking_uri(store_uri)
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("facequant", artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(experiment, run_name="sweep", tags={Tag.SWEEP: "true"}).info.run_id
    client.set_terminated(parent, "FINISHED")
    return client, experiment, parent
