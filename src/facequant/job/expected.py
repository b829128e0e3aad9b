"""Errors a user can fix (a bad setting, missing data or weights, an unreachable store) end the command with one
message naming the problem and the fix, and an exit status, instead of a traceback; HYDRA_FULL_ERROR=1 keeps it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from facequant.config.sections import ConfigError
from facequant.data.lfw import DatasetError
from facequant.models.checkpoints import WeightsError
from facequant.tracking import RegistryError, SelectionError, TrackingError

EXPECTED = (ConfigError, DatasetError, WeightsError, TrackingError, SelectionError, RegistryError)
EXIT_EXPECTED = 2  # main.py; compare.py keeps 1, since its release gate's 2 means "failed the rule"


def _multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@contextmanager
def reported(status: int = EXIT_EXPECTED, job: bool = False) -> Iterator[None]:
    """Turn an expected error into 'error: <message>' on stderr and SystemExit(status), a BaseException, so that
    Hydra prints no traceback. Under HYDRA_FULL_ERROR=1 the error goes on; in a job (job=True) of a multirun too,
    since the sweeper reports it once the other jobs have run."""
    try:
        yield
    except EXPECTED as exc:
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or (job and _multirun()):
            raise
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(status) from None
