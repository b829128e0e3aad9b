"""Quantize FaceNet and evaluate one variant on LFW as one MLflow run; sweep variants with Hydra's -m."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))

from facequant.config import load_settings  # noqa: E402
from facequant.pipeline import run_job  # noqa: E402


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    settings = load_settings(cfg)  # validates everything before any work starts
    metrics = run_job(settings, OmegaConf.to_yaml(cfg, resolve=True))
    return metrics["accuracy"]


if __name__ == "__main__":
    main()
