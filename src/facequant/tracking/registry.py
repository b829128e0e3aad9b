"""The recommended variant in the MLflow Model Registry, under an alias a deployment pipeline can fetch."""

from __future__ import annotations

from collections.abc import Mapping

import mlflow

from facequant.schema import RunRecord


class RegistryError(RuntimeError):
    """The recommended run has no logged model to register."""


def register(run: RunRecord, name: str, alias: str, tags: Mapping[str, str]) -> str:
    """Register the run's logged ONNX model as a new version of `name`, point `alias` at it; returns the version."""
    models = mlflow.search_logged_models(
        experiment_ids=[run.experiment_id], filter_string=f"source_run_id = '{run.run_id}'", output_format="list"
    )
    if not models:
        raise RegistryError(f"run {run.run_id} ({run.name}) has no logged model to register")
    version = mlflow.register_model(models[0].model_uri, name, tags={k: str(v)[:5000] for k, v in tags.items()})
    mlflow.MlflowClient().set_registered_model_alias(name, alias, version.version)
    return str(version.version)
