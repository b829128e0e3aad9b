"""Which jobs of a Hydra multirun are distinct: jobs whose effective settings repeat an earlier job's are dropped."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from omegaconf import DictConfig

from facequant.config import load_settings

log = logging.getLogger(__name__)


def distinct_jobs(
    jobs: Sequence[Sequence[str]], compose: Callable[[list[str]], DictConfig]
) -> tuple[list[list[str]], int]:
    """The first job of each distinct effective configuration, in order, and how many repeats were dropped.

    compose builds a job's full config from its overrides; an invalid job raises ConfigError before any job runs.
    """
    kept: dict[str, list[str]] = {}
    for overrides in jobs:
        settings = load_settings(compose(list(overrides)))
        kept.setdefault(settings.variant_key, list(overrides))
    dropped = len(jobs) - len(kept)
    if dropped:
        log.info("%d of %d jobs repeat an earlier job's effective settings; running %d", dropped, len(jobs), len(kept))
    return list(kept.values()), dropped


def parent_override(run_id: str) -> str:
    """The override that hands a job its sweep's parent run; quoted, since Hydra reads an all-digit id as a number."""
    return f"parent_run_id='{run_id}'"
