"""The recommended variant in the MLflow Model Registry, under an alias a deployment pipeline can fetch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from facequant.schema import RunRecord


class RegistryError(RuntimeError):
    """The recommended run has no logged model to register."""


def register(run: RunRecord, name: str, alias: str, tags: Mapping[str, str]) -> tuple[str, bool]:
    """Point `alias` of `name` at the run's logged ONNX model: the version that already holds this run (its tags
    updated), else a new one. Returns the version and whether it is new, so registering a sweep twice adds none."""
    client = mlflow.MlflowClient()
    tags = {k: str(v)[:5000] for k, v in tags.items()}
    held = client.search_model_versions(f"name = '{name}' and run_id = '{run.run_id}'")
    if held:
        version = str(min(int(v.version) for v in held))
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
    else:
        models = mlflow.search_logged_models(
            experiment_ids=[run.experiment_id], filter_string=f"source_run_id = '{run.run_id}'", output_format="list"
        )
        if not models:
            raise RegistryError(f"run {run.run_id} ({run.name}) has no logged model to register")
        version = str(mlflow.register_model(models[0].model_uri, name, tags=tags).version)
    client.set_registered_model_alias(name, alias, version)
    return version, not held


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
