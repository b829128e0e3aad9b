"""Typed, validated settings for every stage, built from the Hydra config before any work starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


def _choice(section: str, key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{section}.{key}={value!r} is not valid; choose one of: {', '.join(map(str, choices))}")


def _at_least(section: str, key: str, value: float, low: float) -> None:
    if value is None or value < low:
        raise ConfigError(f"{section}.{key}={value!r} is out of range; it must be >= {low}")


PREPROCESS = ("fixed", "per_image")
MODELS = ("vggface2", "casia_webface", "msceleb128", "file")


@dataclass(frozen=True)
class ModelConfig:
    """Which weights to load and how their input must be normalised."""

    name: str
    preprocess: str
    weights_dir: str
    path: str | None = None
    embedding_size: int | None = None

    def __post_init__(self) -> None:
        _choice("model", "name", self.name, MODELS)
        _choice("model", "preprocess", self.preprocess, PREPROCESS)
        if self.name == "file" and not self.path:
            raise ConfigError("model=file needs model.path=<a state_dict .pt file>")


@dataclass(frozen=True)
class DatasetConfig:
    """Where LFW lives and how much of the protocol to evaluate."""

    root: str
    pairs: str = "pairs.txt"
    images: str | None = None
    folds: int = 10
    download: bool = False
    name: str = "lfw"

    def __post_init__(self) -> None:
        if not 1 <= self.folds <= 10:
            raise ConfigError(f"dataset.folds={self.folds} is out of range; choose 1..10")


SELECTION = ("center_weighted_size", "probability", "largest", "largest_over_threshold")


@dataclass(frozen=True)
class AlignConfig:
    """MTCNN settings; they are part of the alignment cache key."""

    image_size: int = 160
    margin: int = 32
    selection_method: str = "center_weighted_size"
    min_face_size: int = 20
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    factor: float = 0.709
    fallback_box: float = 0.45
    batch_size: int = 16

    def __post_init__(self) -> None:
        _choice("align", "selection_method", self.selection_method, SELECTION)
        _at_least("align", "image_size", self.image_size, 32)
        _at_least("align", "margin", self.margin, 0)
        if self.margin >= self.image_size:
            raise ConfigError(f"align.margin={self.margin} must be smaller than align.image_size={self.image_size}")
        _at_least("align", "batch_size", self.batch_size, 1)
        if not 0 < self.fallback_box <= 1:
            raise ConfigError(f"align.fallback_box={self.fallback_box} must be in (0, 1]")


QUANT_MODES = ("fp32", "dynamic", "static")
QTYPES = ("QUInt8", "QInt8")


@dataclass(frozen=True)
class QuantConfig:
    """ONNX Runtime quantization settings, in the spirit of Optimum's QuantizationConfig."""

    mode: str
    weight_type: str = "QInt8"
    activation_type: str = "QUInt8"
    per_channel: bool = False
    reduce_range: bool = False
    op_types: tuple[str, ...] | None = None
    format: str = "QDQ"

    def __post_init__(self) -> None:
        _choice("quant", "mode", self.mode, QUANT_MODES)
        _choice("quant", "weight_type", self.weight_type, QTYPES)
        _choice("quant", "activation_type", self.activation_type, QTYPES)
        _choice("quant", "format", self.format, ("QDQ", "QOperator"))
        if self.activation_type == "QInt8" and self.weight_type == "QUInt8":
            raise ConfigError(
                "quant.activation_type=QInt8 with quant.weight_type=QUInt8 (S8U8) is not supported by ONNX Runtime; "
                "use QUInt8/QInt8 (U8S8, fastest on x86) or QInt8/QInt8"
            )
        if self.mode == "dynamic" and not self.op_types:
            raise ConfigError("quant=dynamic needs quant.op_types, e.g. [MatMul,Gemm]")

    @property
    def variant(self) -> str:
        return {"fp32": "fp32", "dynamic": "int8_dynamic", "static": f"int8_static_{self.format.lower()}"}[self.mode]


CALIBRATION = ("minmax", "entropy", "percentile", "distribution")


@dataclass(frozen=True)
class CalibrationConfig:
    """How static quantization ranges are computed, and from how many held-out faces."""

    method: str = "minmax"
    num_samples: int = 500
    batch_size: int = 32
    seed: int = 0
    num_bins: int = 2048
    num_quantized_bins: int = 128
    percentile: float = 99.999
    symmetric: bool | None = None

    def __post_init__(self) -> None:
        _choice("calibration", "method", self.method, CALIBRATION)
        _at_least("calibration", "num_samples", self.num_samples, 1)
        _at_least("calibration", "batch_size", self.batch_size, 1)
        _at_least("calibration", "num_quantized_bins", self.num_quantized_bins, 2)
        if self.num_bins < self.num_quantized_bins:
            raise ConfigError(
                f"calibration.num_bins={self.num_bins} must be >= calibration.num_quantized_bins="
                f"{self.num_quantized_bins}"
            )
        if not 0 < self.percentile <= 100:
            raise ConfigError(f"calibration.percentile={self.percentile} must be in (0, 100]")


@dataclass(frozen=True)
class BenchmarkConfig:
    """CPU latency protocol: ORT threads, warm-up and timed iterations."""

    threads: int = 2
    warmup: int = 10
    iterations: int = 100
    latency_batch: int = 1
    throughput_batch: int = 32
    throughput_iterations: int = 10

    def __post_init__(self) -> None:
        for f in fields(self):
            _at_least("benchmark", f.name, getattr(self, f.name), 0 if f.name == "warmup" else 1)


@dataclass(frozen=True)
class MlflowConfig:
    """Where runs go."""

    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "facequant"


@dataclass(frozen=True)
class Settings:
    """Everything one job needs, validated."""

    model: ModelConfig
    dataset: DatasetConfig
    align: AlignConfig
    quant: QuantConfig
    calibration: CalibrationConfig
    benchmark: BenchmarkConfig
    mlflow: MlflowConfig
    cache_dir: Path
    eval_batch_size: int = 64

    @property
    def variant_name(self) -> str:
        """Run name: mode, plus calibration method and sample count for static variants."""
        name = self.quant.variant
        if self.quant.mode == "static":
            name += f"_{self.calibration.method}_{self.calibration.num_samples}"
        return name

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_SECTIONS = {
    "model": ModelConfig,
    "dataset": DatasetConfig,
    "align": AlignConfig,
    "quant": QuantConfig,
    "calibration": CalibrationConfig,
    "benchmark": BenchmarkConfig,
    "mlflow": MlflowConfig,
}


def _build(name: str, cls: type, values: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(f'{name}.{k}' for k in unknown)}; valid keys: {sorted(known)}")
    for key, value in values.items():
        if isinstance(value, list):
            values[key] = tuple(value)
    return cls(**values)


def load_settings(cfg: DictConfig) -> Settings:
    """Resolve and validate the Hydra config; raises ConfigError naming the bad key and the valid choices."""
    data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert isinstance(data, dict)
    missing = [name for name in _SECTIONS if name not in data]
    if missing:
        raise ConfigError(f"config group(s) missing: {', '.join(missing)}")
    sections = {name: _build(name, cls, dict(data[name] or {})) for name, cls in _SECTIONS.items()}
    return Settings(
        **sections,
        cache_dir=Path(str(data["cache_dir"])).expanduser(),
        eval_batch_size=int(data.get("eval_batch_size", 64)),
    )
