"""A job's Settings: every stage's typed section (config.sections, config.running, config.target), built from the
Hydra config and validated before any work starts."""

from __future__ import annotations

import logging
import os
import types
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from facequant.cache.files import key_of
from facequant.config.running import BenchmarkConfig, EvalConfig, ExclusionConfig, MlflowConfig, RuntimeConfig
from facequant.config.sections import (
    DEFAULT_LFW_ROOT,
    QUANT_DEFAULTS,
    AlignConfig,
    CalibrationConfig,
    ConfigError,
    DatasetConfig,
    ModelConfig,
    QuantConfig,
)
from facequant.config.target import Arithmetic, TargetConfig, TargetError
from facequant.machine import BF16_FLAGS, cpu, host_isa, usable_cpus

log = logging.getLogger(__name__)

# conf/benchmark/default.yaml times on 1 thread and on every core the job may use: threads: [1, "${cpu_count:}"].
OmegaConf.register_new_resolver("cpu_count", usable_cpus, replace=True)


def _suffix(values: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """key=value for every setting that differs from its default, so distinct settings get distinct names."""

    def text(v: Any) -> str:
        return "+".join(map(str, v)) if isinstance(v, tuple) else str(v).lower() if isinstance(v, bool) else str(v)

    return [f"{k}={text(v)}" for k, v in values.items() if v != defaults.get(k)]


@dataclass(frozen=True)
class Settings:
    """Everything one job needs, validated. Calibration is None unless the variant is static."""

    model: ModelConfig
    dataset: DatasetConfig
    align: AlignConfig
    quant: QuantConfig
    calibration: CalibrationConfig | None
    runtime: RuntimeConfig
    benchmark: BenchmarkConfig
    mlflow: MlflowConfig
    cache_dir: Path
    eval: EvalConfig = field(default_factory=EvalConfig)
    exclusion: ExclusionConfig = field(default_factory=ExclusionConfig)  # read by quant.exclude=auto only
    target: TargetConfig = field(default_factory=TargetConfig)
    preset: tuple[str, ...] = ()  # the settings the target's preset chose, as key=value
    parent_run_id: str | None = None  # set by facequant's sweeper for each job of a multirun
    sensitivity: bool = False  # per-tensor SQNR against FP32; only static QDQ variants measure it
    sensitivity_faces: int = 200

    def __post_init__(self) -> None:
        if self.sensitivity_faces < 1:
            raise ConfigError(f"sensitivity_faces={self.sensitivity_faces} is out of range; it must be >= 1")

    @property
    def variant_name(self) -> str:
        """Mode, calibration method and sample count, _excl<N> when N nodes stay in float (_exclauto until
        quant.exclude=auto has chosen them), then every non-default setting, e.g. [per_channel=false]."""
        return self.name_excluding(len(self.quant.nodes_to_exclude) if not self.quant.exclude else "auto")

    def name_excluding(self, excluded: int | str) -> str:
        """The variant's name with this count of nodes kept in float (0: none, and no _excl suffix)."""
        name = self.quant.variant
        quant = self.quant.effective()
        for key in ("nodes_to_exclude", "exclude", "half_range"):  # by count or target: the list is an artifact
            quant.pop(key, None)
        extra = _suffix(quant, QUANT_DEFAULTS[self.quant.mode].effective())
        if self.quant.half_range not in (None, self.target.half_range):
            extra.append(f"half_range={self.quant.half_range}")  # not the target's preset: another file
        if self.calibration is not None:
            name += f"_{self.calibration.method}_{self.calibration.num_samples}"
            default = CalibrationConfig(self.calibration.method, self.calibration.num_samples)
            extra += _suffix(asdict(self.calibration), asdict(default))
        name += f"_excl{excluded}" if excluded else ""
        name += f"_{self.target.isa}" if self.target.name != "auto" and self.quant.mode == "static" else ""
        flip = "+flip" if self.eval.flip else ""
        return name + (f"[{','.join(extra)}]" if extra else "") + self.runtime.suffix + flip

    @property
    def arithmetic(self) -> Arithmetic:
        """What a static QDQ variant on ONNX Runtime is scored in: the target's emulated arithmetic when the host's
        kernels compute otherwise; every other variant runs as it is on the host."""
        static_ort = self.quant.mode == "static" and self.quant.format == "QDQ" and self.runtime.name == "ort"
        return self.target.arithmetic if static_ort else "host"

    @property
    def is_reference(self) -> bool:
        """The FP32 model on ONNX Runtime f32: the baseline every drop and speed-up is measured against."""
        return self.quant.mode == "fp32" and not self.runtime.suffix

    def effective(self) -> dict[str, Any]:
        """Every setting that can change a result; jobs with equal effective settings are repeats."""
        transient = ("mlflow", "eval", "sensitivity", "sensitivity_faces", "exclusion")  # sensitivity: diagnostics only
        data = {key: value for key, value in self.as_dict().items() if key not in transient}
        if self.eval.flip:  # runs without it keep their earlier keys
            data["eval_flip"] = True
        data["dataset"].pop("follow_symlinks")  # where the files are read from, not which: keys stay as they were
        data["quant"] = self.quant.effective()
        if self.quant.exclude:
            data["gate"] = asdict(self.exclusion)  # the key variants searched under the block's earlier name keep
        data["align"] = self.align.crop_settings()
        data.pop("target")
        if self.arithmetic != "host":
            data["target"] = {"isa": self.target.isa, "arithmetic": self.target.arithmetic}
        data["dataset"]["download"] = False  # how the data arrived changes no result; earlier keys hold false
        if self.dataset.protocol == "pairs":  # keys of the all protocol: pairs runs keep their earlier keys
            for key in ("protocol", "calibration_pool", "identities", "seed"):
                data["dataset"].pop(key)
        return data

    @property
    def variant_key(self) -> str:
        return key_of(self.effective())

    def as_dict(self) -> dict[str, Any]:
        """The settings as logged; the sweep hand-off (parent_run_id) is not a setting."""
        data = asdict(self)
        del data["parent_run_id"]
        if self.calibration is None:
            del data["calibration"]
        if not self.sensitivity:
            del data["sensitivity_faces"]
        if not self.quant.exclude:
            del data["exclusion"]
        target = self.target
        data["target"] |= {"isa": target.isa, "arithmetic": target.arithmetic, "speed_measured": target.speed_measured}
        data["target"]["preset"] = ",".join(data.pop("preset")) or "none"
        return data


_SECTIONS = {
    "model": ModelConfig,
    "dataset": DatasetConfig,
    "align": AlignConfig,
    "quant": QuantConfig,
    "calibration": CalibrationConfig,
    "runtime": RuntimeConfig,
    "benchmark": BenchmarkConfig,
    "mlflow": MlflowConfig,
    "eval": EvalConfig,
    "exclusion": ExclusionConfig,
    "target": TargetConfig,
}
_TOP_LEVEL = {"cache_dir", "parent_run_id", "sensitivity", "sensitivity_faces"}


def _choices(hint: Any) -> tuple | None:
    """The allowed values of a Literal (or optional Literal) field type, else None."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if typing.get_origin(arg) is Literal:
                return (*typing.get_args(arg), None)
    return None


def _build(name: str, cls: type, values: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(f'{name}.{k}' for k in unknown)}; valid keys: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        choices = _choices(hints[key])
        if choices is not None and value not in choices:
            valid = ", ".join(str(c) for c in choices if c is not None)
            raise ConfigError(f"{name}.{key}={value!r} is not valid; choose one of: {valid}")
        if isinstance(value, list):
            values[key] = tuple(value)
    return cls(**values)


def _follow_input_size(align: dict[str, Any], model: ModelConfig) -> dict[str, Any]:
    """align.image_size: null crops faces at the model's input size (model=onnx), else at AlignConfig's default."""
    size = align.get("image_size")
    if model.input_size is not None:
        if size not in (None, model.input_size):
            raise ConfigError(
                f"align.image_size={size} contradicts the model's input size {model.input_size}; leave "
                "align.image_size null so the crops follow the model"
            )
        size = model.input_size
    return {k: v for k, v in align.items() if k != "image_size"} | ({} if size is None else {"image_size": size})


def _absolute(path: str | None) -> str | None:
    """A relative path taken from the directory main.py started in (Hydra's runtime.cwd), which is not a Ray
    worker's working directory."""
    return os.path.normpath(to_absolute_path(os.path.expanduser(path))) if path else path


def default_lfw_root() -> Path:
    """The only root dataset.download=auto downloads LFW into: conf/dataset/lfw.yaml's, made absolute as
    load_settings makes dataset.root."""
    return Path(str(_absolute(DEFAULT_LFW_ROOT)))


def _deprecated_gate(data: dict[str, Any]) -> None:
    """The exclusion block was named gate, as compare.py's release gate still is: gate.KEY=VALUE overrides still
    reach exclusion.KEY for one release, with a warning."""
    given = {key: value for key, value in (data.pop("gate", None) or {}).items() if value is not None}
    if given:
        log.warning(
            "gate.%s is deprecated and will be removed in the next release: use exclusion.%s (quant.exclude=auto's "
            "goal; compare.py's release gate is release_gate)",
            "/".join(given),
            "/".join(given),
        )
        data["exclusion"] = dict(data.get("exclusion") or {}) | given


def _target_preset(quant: QuantConfig, target: TargetConfig) -> tuple[QuantConfig, tuple[str, ...]]:
    """The target's static U8S8 preset fills what the config left open (quant.half_range: null); an explicit
    setting wins, and quant.reduce_range=true already halves every weight."""
    u8s8 = quant.mode == "static" and (quant.activation_type, quant.weight_type) == ("QUInt8", "QInt8")
    if quant.half_range is not None or not u8s8 or quant.reduce_range:
        return quant, ()
    return replace(quant, half_range=target.half_range), (f"quant.half_range={target.half_range}",)


def _check_bf16(runtime: RuntimeConfig) -> None:
    """bf16 needs the CPU's bf16 flags, else OpenVINO silently runs f32: probed here, once per job."""
    model, flags = cpu()
    if runtime.precision == "bf16" and not set(BF16_FLAGS) & flags:
        raise ConfigError(
            f"runtime.precision=bf16 needs a CPU with {' or '.join(BF16_FLAGS)}; this one ({model}) has "
            "neither, so OpenVINO would silently run f32. Use runtime.precision=f32 here."
        )


def load_settings(cfg: DictConfig) -> Settings:
    """Resolve and validate the Hydra config; raises ConfigError naming the bad key and the valid choices."""
    data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert isinstance(data, dict)
    _deprecated_gate(data)
    missing = [name for name in _SECTIONS if name not in data]
    if missing:
        raise ConfigError(f"config group(s) missing: {', '.join(missing)}")
    unknown = sorted(set(data) - set(_SECTIONS) - _TOP_LEVEL)
    if unknown:
        raise ConfigError(
            f"unknown top-level key(s) {', '.join(unknown)}; valid: {sorted(set(_SECTIONS) | _TOP_LEVEL)}"
        )
    values = {name: dict(data[name] or {}) for name in _SECTIONS}
    for section, key in (("dataset", "root"), ("model", "path"), ("model", "weights_dir")):
        values[section][key] = _absolute(values[section].get(key))
    model = _build("model", ModelConfig, values["model"])
    values["align"] = _follow_input_size(values["align"], model)
    values["target"]["host"] = host_isa()  # probed once per job, here, not in a section's constructor
    try:
        sections = {n: model if n == "model" else _build(n, cls, values[n]) for n, cls in _SECTIONS.items()}
    except TargetError as exc:
        raise ConfigError(str(exc)) from exc
    _check_bf16(sections["runtime"])
    quant = sections["quant"]
    quant, preset = _target_preset(quant, sections["target"])
    sections["quant"] = quant
    if quant.mode != "static":
        sections["calibration"] = None  # calibration belongs to static variants only
    # qdq_loss_debug compares the tensors around QuantizeLinear/DequantizeLinear pairs: static QDQ models only
    sensitivity = bool(data.get("sensitivity", True)) and quant.mode == "static" and quant.format == "QDQ"
    faces = int(data.get("sensitivity_faces", 200))
    dataset, calibration = sections["dataset"], sections["calibration"]
    if quant.exclude and not sensitivity:
        raise ConfigError("quant.exclude=auto ranks the nodes by their per-tensor sensitivity: drop sensitivity=false")
    if sensitivity and dataset.protocol == "all" and dataset.calibration_pool - calibration.num_samples < faces:
        if quant.exclude:
            raise ConfigError(
                f"quant.exclude=auto needs held-out faces and validation pairs outside calibration, but "
                f"dataset.calibration_pool={dataset.calibration_pool} leaves "
                f"{dataset.calibration_pool - calibration.num_samples} beside calibration.num_samples="
                f"{calibration.num_samples}; raise dataset.calibration_pool"
            )
        log.warning(
            "no per-tensor sensitivity: it needs sensitivity_faces=%d held-out faces outside calibration, and "
            "dataset.calibration_pool=%d leaves %d beside calibration.num_samples=%d; raise the pool to measure it",
            faces,
            dataset.calibration_pool,
            dataset.calibration_pool - calibration.num_samples,
            calibration.num_samples,
        )
        sensitivity = False
    return Settings(
        **sections,
        cache_dir=Path(_absolute(str(data["cache_dir"]))),
        parent_run_id=data.get("parent_run_id"),
        sensitivity=sensitivity,
        sensitivity_faces=faces,
        preset=preset,
    )
