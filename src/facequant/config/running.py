"""The sections of how a variant runs, is measured and is logged: runtime, benchmark, evaluation, the exclusion
goal and MLflow."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from facequant.config.sections import ConfigError, at_least
from facequant.evaluation.goal import Goal, GoalError
from facequant.evaluation.stats import min_rounds

RuntimeName = Literal["ort", "openvino"]
Precision = Literal["f32", "bf16"]


@dataclass(frozen=True)
class RuntimeConfig:
    """The engine that embeds the faces and is timed: ONNX Runtime's CPU EP or OpenVINO, at an explicit precision."""

    name: RuntimeName = "ort"
    precision: Precision = "f32"

    def __post_init__(self) -> None:
        if self.name == "ort" and self.precision != "f32":
            raise ConfigError(
                f"runtime=ort runs f32 only, not runtime.precision={self.precision}; use runtime=openvino for bf16"
            )

    @property
    def suffix(self) -> str:
        """'' for ONNX Runtime f32, else '@openvino' or '@openvino-bf16' for names."""
        if (self.name, self.precision) == ("ort", "f32"):
            return ""
        return f"@{self.name}" + ("" if self.precision == "f32" else f"-{self.precision}")


@dataclass(frozen=True)
class BenchmarkConfig:
    """Paired timing protocol: per thread count, rounds of warm-up + timed batch-1 calls, variant and FP32 in turn."""

    threads: tuple[int, ...] = (1, 2)
    rounds: int = 9
    warmup: int = 3
    iterations: int = 10
    latency_batch: int = 1
    throughput_batch: int = 32
    throughput_iterations: int = 1
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if isinstance(self.threads, int):
            object.__setattr__(self, "threads", (self.threads,))
        if not self.threads or any(not isinstance(t, int) or t < 1 for t in self.threads):
            raise ConfigError(
                f"benchmark.threads={list(self.threads)} must be a list of thread counts >= 1, e.g. [1,2]"
            )
        object.__setattr__(self, "threads", tuple(dict.fromkeys(self.threads)))
        for f in fields(self):
            if f.name not in ("threads", "confidence"):
                at_least("benchmark", f.name, getattr(self, f.name), 0 if f.name == "warmup" else 1)
        if not 0.5 <= self.confidence < 1:
            raise ConfigError(f"benchmark.confidence={self.confidence} must be in [0.5, 1), e.g. 0.95")
        need = min_rounds(self.confidence)
        if self.rounds < need:
            raise ConfigError(
                f"benchmark.rounds={self.rounds} cannot give a {self.confidence:.0%} interval for the median speed-up; "
                f"use benchmark.rounds>={need}"
            )


@dataclass(frozen=True)
class ExclusionConfig:
    """quant.exclude=auto's goal and budget: the drops allowed on the validation pairs (a Goal, read at the upper
    end of each 95% paired-bootstrap interval as the report's rule reads the test drops), and how many pairs."""

    max_drop: float = 0.005  # accuracy drop against FP32 on the validation pairs
    max_tar_drop: float = 0.01  # TAR@FAR=1e-3 drop
    max_excluded: int = 64  # nodes kept in float at most
    max_steps: int = 7  # re-quantizations at most: 1, 2, 4, ... nodes
    genuine: int = 1000  # validation pairs of one identity
    impostor: int = 10000  # validation pairs of two identities (FAR=1e-3 allows 10 false accepts)
    seed: int = 0

    def __post_init__(self) -> None:
        try:
            self.goal  # noqa: B018 - the goal checks its own bounds
        except GoalError as exc:
            raise ConfigError(f"exclusion.{exc}") from exc
        for name in ("max_excluded", "max_steps", "genuine"):
            at_least("exclusion", name, getattr(self, name), 1)
        at_least("exclusion", "impostor", self.impostor, 1000)  # else FAR=1e-3 is not resolved

    @property
    def goal(self) -> Goal:
        """The validation pairs bound TAR at FAR=1e-3, as the 6000 test pairs do."""
        return Goal(self.max_drop, self.max_tar_drop, far=1e-3)


@dataclass(frozen=True)
class EvalConfig:
    """How evaluated faces are embedded; flip fuses each face's embedding with its mirror image's (sum, then L2
    normalisation), as published LFW figures often do."""

    batch_size: int | None = None  # None: the fastest on this host, timed on the first faces (runtime.embed)
    flip: bool = False

    def __post_init__(self) -> None:
        if self.batch_size is not None:
            at_least("eval", "batch_size", self.batch_size, 1)


@dataclass(frozen=True)
class MlflowConfig:
    """Where runs go."""

    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "facequant"
    system_metrics: bool = False  # MLflow's CPU/memory sampling on each job run
