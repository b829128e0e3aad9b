"""The tracking store: which URI, whether it answers, its experiment, and links into its UI."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
import requests
from mlflow.exceptions import MlflowException
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request

from facequant.cache.files import exclusive
from facequant.tracking.credentials import PASSWORD, USERNAME, has_password, redact

log = logging.getLogger(__name__)


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"


EXPERIMENT_KIND = "custom_model_development"


PROBE_TIMEOUT_S = 5  # to connect: a server that is down or unreachable fails the command within 30 s


# to answer: MLflow's basic-auth server hashes the password on every request (10-13 s a request measured on a
# 2-core machine under load 12, without its auth cache)
PROBE_READ_TIMEOUT_S = 30


PROBE_TRIES = 3


# an API read any user may make: the server's host check and authentication apply to it, not to /health
API_PROBE = "/api/2.0/mlflow/experiments/search"


class TrackingError(RuntimeError):
    """The tracking server does not answer, or refuses the request."""


def _refusal(uri: str, response: requests.Response) -> str:
    """What a refusal of the tracking API means, and its fix."""
    status = f"HTTP {response.status_code} on {API_PROBE}"
    if response.status_code == 403 and "Invalid Host header" in response.text:
        return (
            f"the MLflow tracking server at {uri} refuses the host name {urlsplit(uri).netloc} ({status}: Invalid "
            "Host header); start the server with `--allowed-hosts` naming it, e.g. `mlflow server ... "
            f"--allowed-hosts {urlsplit(uri).netloc}`, or use an address it already allows"
        )
    if response.status_code == 401:
        return (
            f"the MLflow tracking server at {uri} asks for credentials ({status}); set {USERNAME} and {PASSWORD} (or "
            "MLFLOW_TRACKING_TOKEN) to an account of the server (on a Ray cluster, in the environment of `ray start` "
            "on every node)"
        )
    return (
        f"the MLflow tracking server at {uri} refuses the request ({status}); check its address, credentials "
        f"({USERNAME}/PASSWORD or TOKEN, the user's permissions) and proxy"
    )


def probe(uri: str) -> None:
    """Fail fast, naming the URI and the fix, when an HTTP tracking server does not answer or its API refuses
    requests: MLflow answers /health even where its API refuses the host name or the credentials."""
    if has_password(uri):  # e.g. from a config file, or a database URI: it would be stored with every run
        raise TrackingError(
            f"the tracking URI {redact(uri)} holds a password (user:password@), which runs and files would store; give "
            f"it outside the URI: for an http(s) server, in {USERNAME} and {PASSWORD} (or MLFLOW_TRACKING_TOKEN), or "
            "on the command line or in MLFLOW_TRACKING_URI, from where it is moved there; for a database, the "
            "driver's own way (PostgreSQL: PGPASSWORD or ~/.pgpass)"
        )
    if not uri.startswith(("http://", "https://")):
        return
    creds = get_default_host_creds(uri)  # the credentials and TLS settings MLflow's client will use
    error: BaseException | None = None
    for attempt in range(PROBE_TRIES):
        try:
            response = http_request(
                creds,
                API_PROBE,
                "GET",
                params={"max_results": 1},
                max_retries=0,
                timeout=(PROBE_TIMEOUT_S, PROBE_READ_TIMEOUT_S),
            )
        except (requests.RequestException, MlflowException) as exc:  # MLflow wraps the connection error
            error = exc.__context__ if isinstance(exc, MlflowException) and exc.__context__ else exc
            time.sleep(attempt + 1)
            continue
        if response.ok:
            return
        raise TrackingError(_refusal(uri, response))
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
