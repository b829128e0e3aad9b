"""The pre-flight: what the jobs of a command need, checked and fetched before any run exists, so that a missing
dataset, weights file, cache or store fails the whole command once, in seconds, instead of each job after work."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

from facequant import tracking
from facequant.config.sections import CalibrationConfig, ConfigError, DatasetConfig
from facequant.config.settings import Settings
from facequant.data.lfw import Dataset
from facequant.data.selection import load_dataset, select_images
from facequant.models.backbones import fetch_weights

log = logging.getLogger(__name__)


def check_cache_dir(path: Path) -> None:
    """cache_dir must be a folder this process can write to (created if missing)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        what = "is not a folder" if path.exists() and not path.is_dir() else f"is not writable ({exc.strerror})"
        raise ConfigError(
            f"cache_dir={path} {what}; give a writable folder: cache_dir=<folder> or FACEQUANT_CACHE=<folder>"
        ) from None


def check_store(uri: str) -> None:
    """The tracking store answers (a server) or can be opened (a SQLite file, a folder); a new SQLite file gets
    its tables here, which takes seconds."""
    try:
        tracking.use_store(uri)
    except tracking.TrackingError:
        raise
    except Exception as exc:  # noqa: BLE001 - MLflow, SQLAlchemy and the OS each raise their own
        raise tracking.TrackingError(
            f"the tracking store {uri} cannot be opened ({type(exc).__name__}: {str(exc).splitlines()[0][:300]}); "
            "set mlflow.tracking_uri to a writable sqlite:///<file>, a folder, or a reachable server"
        ) from exc


def check_data(datasets: dict[DatasetConfig, Dataset], cfg: DatasetConfig, calib: CalibrationConfig | None) -> None:
    """The dataset is there (LFW downloaded into the default root now if absent) and its calibration pool holds
    the job's calibration draw."""
    if cfg not in datasets:
        datasets[cfg] = load_dataset(cfg)
    select_images(datasets[cfg], cfg, calib)


def preflight(jobs: Sequence[Settings]) -> None:
    """Check every distinct need of the jobs once, quickest first: tracking server, cache folder, data, weights,
    then the store opened; raises the first problem, naming it and its fix."""
    uris = list(dict.fromkeys(job.mlflow.tracking_uri for job in jobs))
    for uri in uris:
        tracking.probe(uri)  # a server that does not answer fails here, before any folder or download
    for cache_dir in dict.fromkeys(job.cache_dir for job in jobs):
        check_cache_dir(cache_dir)
    datasets: dict[DatasetConfig, Dataset] = {}
    for dataset, calib in dict.fromkeys((job.dataset, job.calibration) for job in jobs):
        check_data(datasets, dataset, calib)
    for model in dict.fromkeys(job.model for job in jobs):
        log.info("pre-flight: model=%s weights at %s", model.name, fetch_weights(model)[0])
    for uri in uris:
        check_store(uri)
    log.info("pre-flight passed for %d job(s)", len(jobs))
