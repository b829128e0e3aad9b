"""Hydra sweeper `facequant`: BasicSweeper's cartesian product, run once per distinct job under one MLflow parent."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from facequant import tracking
from facequant.config.running import MlflowConfig
from facequant.job.expected import reported
from facequant.job.sweep import absolute_sweep_dir, check_launcher, check_ray, distinct_jobs, hand_off

log = logging.getLogger(__name__)


@dataclass
class FacequantSweeperConf:
    _target_: str = "hydra_plugins.facequant_sweeper.FacequantSweeper"
    max_batch_size: Optional[int] = None  # noqa: UP045 (OmegaConf reads these annotations at run time)
    params: Optional[dict[str, str]] = None  # noqa: UP045


ConfigStore.instance().store(group="hydra/sweeper", name="facequant", node=FacequantSweeperConf, provider="facequant")


class FacequantSweeper(BasicSweeper):
    """Drops jobs whose effective settings repeat, and hands every job its parent run id as an override."""

    @staticmethod
    def _task_config(config: DictConfig) -> DictConfig:
        """The job's config as its task function sees it: without the hydra node."""
        with open_dict(config):
            del config["hydra"]
        return config

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        """Check the launcher against the tracking store, and a Ray launcher's cluster, before Hydra instantiates
        it."""
        with reported():
            check_launcher(
                config.hydra.runtime.choices.get("hydra/launcher", "basic"),
                config.hydra.launcher._target_,
                str(config.mlflow.tracking_uri),
            )
            if "ray" in config.hydra.launcher:
                check_ray(OmegaConf.select(config.hydra.launcher, "ray.init.address"))
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        """Compose and pre-flight every distinct job before any run exists, then run them under one parent; an
        expected error (in the pre-flight or a job) ends the command with its message and status 2."""
        with reported():
            return self._sweep(arguments)

    def _sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        (all_jobs,) = self.split_arguments(overrides, None)
        loader = self.hydra_context.config_loader
        jobs, settings, dropped = distinct_jobs(
            all_jobs, lambda job: self._task_config(loader.load_sweep_config(self.config, job))
        )
        from facequant.job.preflight import preflight  # imports torch: not on every Hydra command, which loads this

        preflight(settings)
        sweep_dir = Path(self.config.hydra.sweep.dir).absolute()
        with open_dict(self.config):  # launchers compose each job from these overrides, so it lands here too
            self.config.hydra.sweep.dir = str(sweep_dir)
            self.config.hydra.overrides.hydra.append(absolute_sweep_dir(str(sweep_dir)))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        tracking.handle_sigterm()
        mlflow_cfg = MlflowConfig(**OmegaConf.to_container(self.config.mlflow, resolve=True))
        task_overrides = " ".join(self.config.hydra.overrides.task)
        with tracking.sweep_run(mlflow_cfg, task_overrides, str(sweep_dir), len(jobs), dropped) as parent:
            handed = hand_off(parent, mlflow_cfg.tracking_uri)
            batches = self.split_overrides_to_chunks([[*j, *handed] for j in jobs], self.max_batch_size)
            returns, index = [], 0
            for batch in batches:
                self.validate_batch_is_legal(batch)
                results = self.launcher.launch(batch, initial_job_idx=index)
                index += len(batch)
                returns.append(results)
        for results in returns:  # like BasicSweeper: a failed job fails the multirun, after the parent is closed
            for result in results:
                _ = result.return_value
        return returns
