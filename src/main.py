"""Quantize FaceNet and evaluate one variant on LFW as one MLflow run; sweep variants with Hydra's -m."""

import hydra
from omegaconf import DictConfig, OmegaConf

from facequant.config.settings import load_settings
from facequant.job.expected import reported
from facequant.job.preflight import preflight
from facequant.schema import Metric
from facequant.tracking import handle_sigterm, hide_credentials


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    handle_sigterm()
    with reported(job=True):  # a bad setting, missing data or weights: one message and status 2 (in a sweep: its end)
        settings = load_settings(cfg)  # validates everything before any work starts
        if settings.parent_run_id is None:  # a sweep's jobs were checked by its sweeper
            preflight([settings])
        from facequant.job.pipeline import run_job  # here: a pre-flight that fails need not wait for its imports

        metrics = run_job(settings, OmegaConf.to_yaml(cfg, resolve=True))
    # what a Hydra sweeper optimises: 10-fold accuracy, or TAR@FAR=1e-3 under protocol=all (it has no accuracy)
    return metrics.get(Metric.ACCURACY, metrics.get(Metric.TAR_FAR_1E3, float("nan")))


if __name__ == "__main__":
    hide_credentials()  # before Hydra reads argv and MLFLOW_TRACKING_URI: no file or run may hold a password
    main()
