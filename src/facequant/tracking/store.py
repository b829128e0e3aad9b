"""The tracking store: which URI, whether it answers, its experiment, and links into its UI."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import mlflow
import requests
from mlflow.exceptions import MlflowException

from facequant.cache.files import exclusive

log = logging.getLogger(__name__)


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"


EXPERIMENT_KIND = "custom_model_development"


PROBE_TIMEOUT_S = 5


PROBE_TRIES = 3


class TrackingError(RuntimeError):
    """The tracking server does not answer, or refuses the request."""


def probe(uri: str) -> None:
    """Fail fast, naming the URI, when an HTTP tracking server does not answer or refuses requests."""
    if not uri.startswith(("http://", "https://")):
        return
    error: Exception | None = None
    for attempt in range(PROBE_TRIES):
        try:
            response = requests.get(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S)
        except requests.RequestException as exc:
            error = exc
            time.sleep(attempt + 1)
            continue
        if response.ok:
            return
        raise TrackingError(
            f"the MLflow tracking server at {uri} refuses the request (HTTP {response.status_code} on /health); "
            "check its address, credentials (MLFLOW_TRACKING_USERNAME/PASSWORD or TOKEN) and proxy"
        )
    raise TrackingError(
        f"the MLflow tracking server at {uri} does not answer ({type(error).__name__}); start it "
        "(`mlflow server --host 127.0.0.1 --port 5000 ...`) or set mlflow.tracking_uri to a reachable server"
    )


def use_store(uri: str) -> None:
    """Point MLflow at uri; a new SQLite file gets its tables under a file lock, so concurrent sweeps don't race."""
    probe(uri)
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///")).expanduser().resolve()
        with exclusive(db):  # makes its folder
            mlflow.MlflowClient().search_experiments(max_results=1)  # creates or migrates the schema


def _experiment_id(client: mlflow.MlflowClient, name: str) -> str:
    """The experiment's id, created if needed, tagged as model development so the UI opens on its runs."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException:  # created meanwhile by a concurrent sweep
            experiment = client.get_experiment_by_name(name)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) is None:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def ui_link(uri: str, experiment_id: str) -> str:
    """The MLflow UI page of the experiment's runs in model-training mode (the UI defaults to GenAI mode)."""
    page = f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/{page}"
    return f"http://127.0.0.1:5000/{page} (after `mlflow ui --backend-store-uri {uri}`)"
