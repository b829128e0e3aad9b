"""Which jobs of a Hydra multirun are distinct: jobs whose effective settings repeat an earlier job's are dropped."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlparse

from omegaconf import DictConfig

from facequant.config.sections import ConfigError
from facequant.config.settings import Settings, load_settings

log = logging.getLogger(__name__)


def distinct_jobs(
    jobs: Sequence[Sequence[str]], compose: Callable[[list[str]], DictConfig]
) -> tuple[list[list[str]], list[Settings], int]:
    """The first job of each distinct effective configuration, in order, with its settings, and how many repeats
    were dropped.

    compose builds a job's full config from its overrides; an invalid job raises ConfigError before any job runs.
    """
    kept: dict[str, tuple[list[str], Settings]] = {}
    for overrides in jobs:
        settings = load_settings(compose(list(overrides)))
        kept.setdefault(settings.variant_key, (list(overrides), settings))
    dropped = len(jobs) - len(kept)
    if dropped:
        log.info("%d of %d jobs repeat an earlier job's effective settings; running %d", dropped, len(jobs), len(kept))
    return [o for o, _ in kept.values()], [s for _, s in kept.values()], dropped


def _quoted(value: str) -> str:
    """A Hydra override value taken literally: quoted, since Hydra reads an all-digit id as a number."""
    return f"'{value}'" if "'" not in value else f'"{value}"'


def parent_override(run_id: str) -> str:
    """The override that hands a job its sweep's parent run."""
    return f"parent_run_id={_quoted(run_id)}"


def hand_off(run_id: str, tracking_uri: str) -> list[str]:
    """What every job gets from the driver as overrides, not through the environment, which a Ray worker does
    not share: the parent run, and the tracking URI the driver resolved (e.g. from MLFLOW_TRACKING_URI)."""
    return [parent_override(run_id), f"mlflow.tracking_uri={_quoted(tracking_uri)}"]


def absolute_sweep_dir(path: str) -> str:
    """The Hydra override that fixes the sweep folder as an absolute path, so every job, wherever it runs,
    writes its outputs there and not below a worker's own working directory."""
    return f"hydra.sweep.dir={_quoted(str(Path(path).absolute()))}"


BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
SERVER_HINT = (
    "start an MLflow tracking server on PostgreSQL (mlflow server --backend-store-uri postgresql://USER@HOST/DB "
    "--artifacts-destination DIR --serve-artifacts --host 0.0.0.0 --port 5000; see docs/cluster.md, 'Sweeps on a Ray "
    "cluster') and pass mlflow.tracking_uri=http://HOST:5000"
)


def check_launcher(name: str, target: str, tracking_uri: str) -> None:
    """Refuse, before any job runs, a launcher that is not installed, and a parallel launcher on SQLite (its
    concurrent writers get "database is locked" and lose runs) or on a relative file store."""
    if target == BASIC_LAUNCHER:
        return
    module = target.rpartition(".")[0]
    if not _installed(module):
        raise ConfigError(
            f"hydra/launcher={name} needs {module}, which is not installed: pip install -e '.[ray]' (the README's "
            "set-up installs it)"
        )
    if tracking_uri.startswith("sqlite:"):
        raise ConfigError(
            f"hydra/launcher={name} runs jobs in parallel processes, and SQLite ({tracking_uri}) under concurrent "
            f"writers fails with 'database is locked' and loses runs: {SERVER_HINT}"
        )
    parsed = urlparse(tracking_uri)
    if parsed.scheme in ("", "file") and not Path(parsed.path).is_absolute():
        raise ConfigError(
            f"hydra/launcher={name} runs jobs in other processes and directories, and the relative file store "
            f"{tracking_uri} would be a different folder for each: {SERVER_HINT}"
        )


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


RAY_HINT = (
    "start one on this machine with `ray start --head` (docs/cluster.md), or point RAY_ADDRESS at a running head "
    "(RAY_ADDRESS=HOST:6379, or ray://HOST:10001 for Ray Client)"
)
RAY_PROBE_TIMEOUT_S = 3


def check_ray(address: str | None) -> None:
    """Refuse, within seconds, a Ray address nothing answers at: ray.init would retry a dead head (such as the one
    a stale ray_current_cluster file names) for minutes. None or 'local' starts a local Ray, and needs nothing."""
    if address in (None, "local"):
        return
    if address.startswith("ray://"):
        resolved = address.removeprefix("ray://")
    else:
        from ray._private.services import get_ray_address_from_environment  # how ray.init resolves auto

        try:
            resolved = get_ray_address_from_environment(address, None)
        except ConnectionError:
            raise ConfigError(
                f"hydra/launcher=ray: no Ray cluster is running on this machine (address={address}); {RAY_HINT}"
            ) from None
    host, _, port = str(resolved).rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_PROBE_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:
        found = f" (address={address} resolves to it)" if resolved != address else ""
        raise ConfigError(
            f"hydra/launcher=ray: no Ray cluster answers at {resolved}{found}: {exc}; {RAY_HINT}"
        ) from None
