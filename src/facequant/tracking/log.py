"""Logging into the active run: params, metrics, tags, text, artifacts and the ONNX model."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import onnx
from mlflow.models import infer_signature

from facequant.schema import MODEL_ARTIFACT

log = logging.getLogger(__name__)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': '1'}; lists and tuples become comma-separated strings."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        elif isinstance(value, list | tuple):
            flat[name] = ",".join(map(str, value))
        else:
            flat[name] = str(value)
    return flat


def log_params(params: Mapping[str, Any]) -> None:
    mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def set_tags(tags: Mapping[str, str]) -> None:
    mlflow.set_tags(dict(tags))


def log_text(text: str, name: str) -> None:
    mlflow.log_text(text, name)


def log_artifacts(paths: list[Path], artifact_path: str | None = None) -> None:
    for path in paths:
        mlflow.log_artifact(str(path), artifact_path)


def log_onnx_model(path: Path, example_in: np.ndarray, example_out: np.ndarray) -> None:
    """Log the ONNX file as the run's model, with its tensor signature, in one file."""
    mlflow.onnx.log_model(
        onnx.load(str(path)),
        name=MODEL_ARTIFACT,
        signature=infer_signature(example_in, example_out),
        save_as_external_data=False,
        pip_requirements=model_requirements(),
    )


def model_requirements() -> list[str]:
    """What the model's pyfunc imports, pinned as installed (MLflow adds itself): the list MLflow would infer by
    loading the model in a subprocess, which took 8 s of every job."""
    return [f"numpy=={version('numpy')}", *mlflow.onnx.get_default_pip_requirements()]
