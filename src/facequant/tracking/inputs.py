"""The evaluation pairs and the calibration faces as MLflow dataset inputs, so the UI tells runs on other data apart."""

from __future__ import annotations

import time
from collections.abc import Sequence

import mlflow
import pandas as pd
from mlflow.data.dataset import Dataset
from mlflow.entities import DatasetInput
from mlflow.exceptions import MlflowException

from facequant.schema import CALIBRATION_CONTEXT, EVALUATION_CONTEXT, SENSITIVITY_CONTEXT, VALIDATION_CONTEXT

# What a tracking server's SQL store answers when two jobs create the same dataset at once (it checks, then inserts).
RACE = ("UniqueViolation", "UNIQUE constraint failed", "Duplicate entry", "dataset_pk")


def _log_input(dataset: Dataset, context: str, attempts: int = 3) -> None:
    """mlflow.log_input, again when a parallel job created the same dataset between the server's check and insert:
    the second attempt finds it."""
    for attempt in range(attempts):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except MlflowException as exc:
            if attempt == attempts - 1 or not any(marker in str(exc) for marker in RACE):
                raise
            time.sleep(0.5 * (attempt + 1))


def log_evaluation_set(
    pairs: pd.DataFrame, name: str, digest: str, source: str, context: str = EVALUATION_CONTEXT
) -> None:
    """One row per evaluated pair (fold, label, left, right), or per image (image, identity) under protocol=all;
    the digest names exactly which pairs."""
    targets = "label" if "label" in pairs else None
    dataset = mlflow.data.from_pandas(pairs, source=source, name=name, digest=digest, targets=targets)
    _log_input(dataset, context)


def log_validation_set(pairs: pd.DataFrame, name: str, digest: str, source: str) -> None:
    """The pairs quant.exclude=auto chose its exclusions on, disjoint from calibration, sensitivity and test."""
    log_evaluation_set(pairs, name, digest, source, VALIDATION_CONTEXT)


def log_calibration_set(images: pd.DataFrame, name: str, digest: str, source: str) -> None:
    """The held-out images a static variant was calibrated on; the digest covers their content and crop."""
    _log_images(images, name, digest, source, CALIBRATION_CONTEXT)


def log_sensitivity_set(images: pd.DataFrame, name: str, digest: str, source: str) -> None:
    """The held-out images per-tensor sensitivity was measured on, disjoint from calibration and evaluation."""
    _log_images(images, name, digest, source, SENSITIVITY_CONTEXT)


def _log_images(images: pd.DataFrame, name: str, digest: str, source: str, context: str) -> None:
    _log_input(mlflow.data.from_pandas(images, source=source, name=name, digest=digest), context)


def log_sweep_inputs(parent: str, children: Sequence[str]) -> None:
    """Give the sweep's parent run its children's data sets: a collapsed sweep shows only the parent's row, whose
    Dataset column would otherwise read `-`."""
    client = mlflow.MlflowClient()
    inputs: dict[tuple[str, ...], DatasetInput] = {}
    for child in children:
        for item in client.get_run(child).inputs.dataset_inputs:
            key = (item.dataset.name, item.dataset.digest, *sorted((tag.key, tag.value) for tag in item.tags))
            inputs.setdefault(key, item)
    if inputs:
        client.log_inputs(parent, datasets=list(inputs.values()))
