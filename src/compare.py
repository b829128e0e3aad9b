"""Build the comparison report (reports/<sweep>/report.md + PNGs) from the MLflow runs of a sweep; with
release_gate=true or release_gate.variant=NAME, exit non-zero when the variants fail the rule, as a release check."""

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from facequant import tracking
from facequant.config.running import MlflowConfig
from facequant.config.sections import ConfigError
from facequant.evaluation.goal import GoalError
from facequant.job.expected import reported
from facequant.machine import host_isa
from facequant.report import Rule, compare, register_recommended
from facequant.report.release_gate import COULD_NOT_JUDGE, GATE_FAILED, gate_failures, gated_variants
from facequant.schema import TAR_DROP_AT_FAR


def _plain(node: object) -> object:
    return OmegaConf.to_container(node) if OmegaConf.is_config(node) else node


@hydra.main(config_path="../conf", config_name="compare", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with reported(status=COULD_NOT_JUDGE):  # a bad setting, no runs: one message; 2 is a failed gate's
        _compare(cfg)


def _compare(cfg: DictConfig) -> None:
    if cfg.far not in TAR_DROP_AT_FAR:
        raise ConfigError(f"far={cfg.far} has no logged TAR drop; choose one of {', '.join(map(str, TAR_DROP_AT_FAR))}")
    try:
        rule = Rule(cfg.max_drop, cfg.max_tar_drop, cfg.far)
    except GoalError as exc:
        raise ConfigError(str(exc)) from exc
    gated = gated_variants(_plain(cfg.release_gate))
    if (old := gated_variants(_plain(cfg.gate))) is not None:
        logging.warning("gate= is deprecated and will be removed in the next release: use release_gate=")
        gated = old if gated is None else gated
    mlflow_cfg = MlflowConfig(**cfg.mlflow)
    sweeps = OmegaConf.to_container(cfg.sweep) if OmegaConf.is_config(cfg.sweep) else cfg.sweep
    target = cfg.target.name if cfg.get("target") else None  # the target group, as main.py's: Hydra checks the name
    result = compare(mlflow_cfg, sweeps, cfg.filter, Path(cfg.out) if cfg.out else None, rule, target)
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
        isa = (host_isa() if target == "auto" else target) if target else None
        alias = f"{cfg.alias}-{isa}" if isa else cfg.alias
        print(register_recommended(result, cfg.register, alias, rule))


if __name__ == "__main__":
    tracking.hide_credentials()  # before Hydra reads argv and MLFLOW_TRACKING_URI: no file or run may hold a password
    main()
