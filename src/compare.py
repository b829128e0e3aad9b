"""Build the comparison report (reports/<sweep>/report.md + PNGs) from the MLflow runs of a sweep."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))

from facequant.config import ConfigError, MlflowConfig  # noqa: E402
from facequant.report import Rule, compare  # noqa: E402


@hydra.main(config_path="../conf", config_name="compare", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if not 0 <= cfg.max_drop <= 1 or not 0 <= cfg.max_tar_drop <= 1:
        raise ConfigError("max_drop and max_tar_drop are fractions in [0, 1], e.g. max_drop=0.005 for 0.5 pt")
    report = compare(
        MlflowConfig(**cfg.mlflow),
        cfg.sweep,
        cfg.filter,
        Path(cfg.out) if cfg.out else None,
        Rule(cfg.max_drop, cfg.max_tar_drop),
    )
    print(f"report written to {report}")


if __name__ == "__main__":
    main()
