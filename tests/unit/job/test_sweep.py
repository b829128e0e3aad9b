"""What a sweep checks before any job starts: a launcher that is installed and a store every worker shares."""

from __future__ import annotations

import pytest

from facequant.config.sections import ConfigError
from facequant.job.sweep import check_launcher


def test_a_launcher_that_is_not_installed_names_the_extra():
    with pytest.raises(ConfigError, match=r"hydra/launcher=slurm needs hydra_plugins.no_such_launcher.*\[ray\]"):
        check_launcher("slurm", "hydra_plugins.no_such_launcher.SlurmLauncher", "http://127.0.0.1:5000")
    ray = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    check_launcher("ray", ray, "http://127.0.0.1:5000")
    check_launcher("ray", ray, "file:///nfs/mlruns")  # one absolute folder every worker shares
    for relative in ("mlruns", "file:./mlruns"):
        with pytest.raises(ConfigError, match="relative file store"):
            check_launcher("ray", ray, relative)
