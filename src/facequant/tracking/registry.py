"""The recommended variant in the MLflow Model Registry, under an alias a deployment pipeline can fetch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

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


def registered(name: str, alias: str, dst: Path) -> tuple[Path, dict[str, str]]:
    """The ONNX file of name@alias, downloaded under dst, and that version's tags."""
    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise RegistryError(
            f"no version of {name} has the alias {alias}: register one with compare.py register={name}"
        ) from exc
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}@{alias}", dst_path=str(dst)))
    files = sorted(local.rglob("*.onnx"))
    if not files:
        raise RegistryError(f"{name}@{alias} (version {version.version}) holds no ONNX file")
    return files[0], dict(version.tags)
