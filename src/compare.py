"""Build the comparison report (reports/<sweep>/report.md + PNGs) from the MLflow runs of a sweep; with gate=true or
gate.variant=NAME, exit non-zero when the variants fail the rule, as a release pipeline's check."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from facequant import tracking
from facequant.config.sections import ConfigError, MlflowConfig
from facequant.report import Rule, compare, register_recommended
from facequant.report.release_gate import GATE_FAILED, gate_failures, gated_variants
from facequant.schema import TAR_DROP_AT_FAR


@hydra.main(config_path="../conf", config_name="compare", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if not all(0 <= cfg[k] <= 1 for k in ("max_drop", "max_tar_drop")):
        raise ConfigError("max_drop and max_tar_drop are fractions in [0, 1], e.g. max_drop=0.005 for 0.5 pt")
    if cfg.far not in TAR_DROP_AT_FAR:
        raise ConfigError(f"far={cfg.far} has no logged TAR drop; choose one of {', '.join(map(str, TAR_DROP_AT_FAR))}")
    gated = gated_variants(OmegaConf.to_container(cfg.gate) if OmegaConf.is_config(cfg.gate) else cfg.gate)
    mlflow_cfg = MlflowConfig(**cfg.mlflow)
    rule = Rule(cfg.max_drop, cfg.max_tar_drop, cfg.far)
    sweeps = OmegaConf.to_container(cfg.sweep) if OmegaConf.is_config(cfg.sweep) else cfg.sweep
    result = compare(mlflow_cfg, sweeps, cfg.filter, Path(cfg.out) if cfg.out else None, rule)
    print(f"report written to {result.report}")
    print(f"MLflow runs: {tracking.ui_link(mlflow_cfg.tracking_uri, result.experiment_id)}")
    if gated is not None:
        failures = gate_failures(result.runs, rule, gated)
        for line in failures:
            print(f"gate failed: {line}")
        if failures:
            sys.exit(GATE_FAILED)  # before anything is registered
        passed = ", ".join(gated) + " pass" if gated else f"{result.recommended.label} is recommended and passes"
        print(f"gate passed: {passed} the rule (see the report)")
    if cfg.register:
        print(register_recommended(result, cfg.register, cfg.alias, rule))


if __name__ == "__main__":
    main()
