"""The typed, validated settings of each stage (one per Hydra group); config.py assembles them into Settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from facequant.onnxmodel import FIXED_MEAN, FIXED_STD, INPUT, ChannelOrder, InputSpec, Layout, resolve


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


def at_least(section: str, key: str, value: float, low: float) -> None:
    if value is None or value < low:
        raise ConfigError(f"{section}.{key}={value!r} is out of range; it must be >= {low}")


Preprocess = Literal["fixed", "per_image"]
ModelName = Literal["vggface2", "casia_webface", "msceleb128", "file", "onnx"]
Selection = Literal["center_weighted_size", "probability", "largest", "largest_over_threshold"]
AlignImplementation = Literal["openvino", "onnxruntime", "reference"]
QuantMode = Literal["fp32", "dynamic", "static"]
QType = Literal["QUInt8", "QInt8"]
QFormat = Literal["QDQ", "QOperator"]
CalibrationMethod = Literal["minmax", "entropy", "percentile", "distribution"]


# Keys of model=onnx only: facequant's own exports take NCHW RGB faces at 'input' and give 'embedding'.
_ONNX_KEYS = ("input_name", "layout", "input_size", "channel_order", "output_name")
_INFERRED = ("embedding_size", "preprocess")  # model=onnx infers these too when the file tells them


def _values(name: str, value: float | tuple[float, ...]) -> tuple[float, ...]:
    """One value or one per channel, all positive for the std."""
    values = (float(value),) if isinstance(value, int | float) else tuple(float(v) for v in value)
    if len(values) not in (1, 3) or (name == "std" and min(values) <= 0):
        raise ConfigError(f"model.{name}={list(values)} must be one value or three (one per channel), std > 0")
    return values


@dataclass(frozen=True)
class ModelConfig:
    """Which weights or ONNX file to load and how faces must be fed to it; model=onnx fills from the file what it
    tells and checks the rest against it."""

    name: ModelName
    preprocess: Preprocess | None
    weights_dir: str
    path: str | None = None
    embedding_size: int | None = None
    mean: tuple[float, ...] = FIXED_MEAN  # fixed: (x - mean) / std per channel, in the model's channel order
    std: tuple[float, ...] = FIXED_STD
    input_name: str | None = None
    layout: Layout | None = None
    input_size: int | None = None
    channel_order: ChannelOrder | None = None
    output_name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _values("mean", self.mean))
        object.__setattr__(self, "std", _values("std", self.std))
        if self.name in ("file", "onnx"):
            what = "an InceptionResnetV1 state_dict .pt file" if self.name == "file" else "a face-embedding .onnx file"
            if not self.path:
                raise ConfigError(f"model={self.name} needs model.path=<{what}>")
            if not Path(self.path).expanduser().is_file():
                raise ConfigError(f"model.path={self.path} is not a file; give the path of {what}")
        if self.name == "onnx":
            found = resolve(Path(self.path).expanduser(), **{k: getattr(self, k) for k in _ONNX_KEYS + _INFERRED})
            for key in _ONNX_KEYS + _INFERRED:
                object.__setattr__(self, key, getattr(found, key))
        else:
            given = [k for k in _ONNX_KEYS if getattr(self, k) is not None]
            if given:
                raise ConfigError(f"model.{given[0]} applies to model=onnx only; model={self.name} takes NCHW RGB")
        if self.preprocess is None:
            raise ConfigError(f"model={self.name} needs model.preprocess=fixed or per_image")
        if self.preprocess == "per_image" and (self.mean, self.std) != (FIXED_MEAN, FIXED_STD):
            raise ConfigError("model.mean and model.std apply to model.preprocess=fixed only")

    def input_spec(self) -> InputSpec:
        """How faces are fed to this model: its preprocessing, layout, channel order and tensor names."""
        assert self.preprocess is not None, "checked in __post_init__"
        return InputSpec(
            self.preprocess,
            self.mean,
            self.std,
            self.layout or "NCHW",
            self.channel_order or "RGB",
            self.input_name or INPUT,
            self.output_name,
        )


Protocol = Literal["pairs", "all"]
DatasetName = Literal["lfw", "folder"]
DEFAULT_LFW_ROOT = "data/lfw"  # conf/dataset/lfw.yaml's root, from the directory main.py starts in; a test checks


@dataclass(frozen=True)
class DatasetConfig:
    """Which images (LFW, or a folder of <identity>/<image>) and which protocol: a pairs file, or every image
    against every other."""

    root: str
    pairs: str | None = "pairs.txt"  # lfw: View 2's pairs.txt; folder: a CSV left,right,label[,fold] or null
    images: str | None = None
    folds: int = 10
    # auto: LFW is downloaded when absent from the default root (DEFAULT_LFW_ROOT) only; true: into any root
    download: Literal["auto", True, False] = "auto"
    name: DatasetName = "lfw"
    protocol: Protocol = "pairs"
    calibration_pool: int = 500  # all: images of whole identities reserved for calibration, never evaluated
    identities: int | None = None  # all: evaluate a seeded subset of this many identities (quick runs)
    seed: int = 0  # all: the draw of the calibration identities and of the subset
    skip_unreadable: bool = False  # true: images Pillow cannot decode are left out and counted, not an error
    follow_symlinks: bool = False  # true: read symbolic links in root that lead outside it (else refused)

    def __post_init__(self) -> None:
        if not 1 <= self.folds <= 10:
            raise ConfigError(f"dataset.folds={self.folds} is out of range; choose 1..10")
        at_least("dataset", "calibration_pool", self.calibration_pool, 1)
        if self.identities is not None:
            if self.protocol != "all":
                raise ConfigError("dataset.identities selects identities for dataset.protocol=all only; drop it")
            at_least("dataset", "identities", self.identities, 2)
        if self.name == "lfw" and not self.pairs:
            raise ConfigError("dataset=lfw needs dataset.pairs, the View 2 pairs file (pairs.txt)")
        if self.name == "folder":
            if self.protocol == "pairs" and not self.pairs:
                raise ConfigError(
                    "dataset=folder with dataset.protocol=pairs needs dataset.pairs=<CSV left,right,label[,fold] "
                    "relative to dataset.root>; or use dataset.protocol=all to compare every image with every other"
                )
            if self.protocol == "all" and self.pairs:
                raise ConfigError(
                    f"dataset.pairs={self.pairs} is not used under dataset.protocol=all (every pair is evaluated); "
                    "set dataset.protocol=pairs to evaluate that file, or dataset.pairs=null"
                )
            if self.download is True or self.images:
                raise ConfigError("dataset.download and dataset.images are LFW's; dataset=folder reads dataset.root")


@dataclass(frozen=True)
class AlignConfig:
    """MTCNN settings; all but batch_size, workers and implementation (whose crops are at parity) decide the crop,
    so they key the alignment cache."""

    image_size: int = 160
    margin: int = 32
    selection_method: Selection = "center_weighted_size"
    min_face_size: int = 20
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    factor: float = 0.709
    fallback_box: float = 0.45
    detect_max_side: int = 1600  # larger photos are detected downscaled to this side, cropped at full resolution
    batch_size: int = 16
    workers: int | None = None  # batches aligned at once; None: one per usable CPU, 1 for reference
    implementation: AlignImplementation = "openvino"

    def __post_init__(self) -> None:
        at_least("align", "image_size", self.image_size, 32)
        at_least("align", "margin", self.margin, 0)
        if self.margin >= self.image_size:
            raise ConfigError(f"align.margin={self.margin} must be smaller than align.image_size={self.image_size}")
        at_least("align", "batch_size", self.batch_size, 1)
        if self.workers is not None:
            at_least("align", "workers", self.workers, 1)
        at_least("align", "detect_max_side", self.detect_max_side, 2 * self.min_face_size)
        if not 0 < self.fallback_box <= 1:
            raise ConfigError(f"align.fallback_box={self.fallback_box} must be in (0, 1]")

    def crop_settings(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("batch_size", "workers", "implementation")}


# The keys each mode reads; the others do not change its model, its identity or its name.
_QUANT_KEYS = {
    "fp32": (),
    "dynamic": ("weight_type", "op_types", "per_channel", "reduce_range", "nodes_to_exclude"),
    "static": (
        "format",
        "activation_type",
        "weight_type",
        "per_channel",
        "reduce_range",
        "op_types",
        "nodes_to_exclude",
    ),
}


@dataclass(frozen=True)
class QuantConfig:
    """ONNX Runtime quantization settings, in the spirit of Optimum's QuantizationConfig."""

    mode: QuantMode
    weight_type: QType = "QInt8"
    activation_type: QType = "QUInt8"
    per_channel: bool = False
    reduce_range: bool = False
    op_types: tuple[str, ...] | None = None
    format: QFormat = "QDQ"
    nodes_to_exclude: tuple[str, ...] = ()  # node names kept in float, e.g. from sensitivity.csv's `node` column
    exclude: Literal["auto"] | None = None  # auto: search the nodes to keep in float under the goal (exclusion.py)
    # saturating: half-range (7-bit) weights in the nodes whose int16 pair sums saturate on avx2, full range elsewhere;
    # none: full range everywhere; None: the target's preset decides (load_settings)
    half_range: Literal["saturating", "none"] | None = None

    def __post_init__(self) -> None:
        if self.exclude is not None and (self.mode != "static" or self.format != "QDQ"):
            raise ConfigError("quant.exclude=auto ranks the tensors of a static QDQ variant: use quant=static, QDQ")
        if self.exclude is not None and self.nodes_to_exclude:
            raise ConfigError(
                "quant.exclude=auto chooses the nodes itself; drop quant.nodes_to_exclude, or drop quant.exclude"
            )
        if self.mode == "static" and self.activation_type == "QInt8" and self.weight_type == "QUInt8":
            raise ConfigError(
                "quant.activation_type=QInt8 with quant.weight_type=QUInt8 (S8U8) is not supported by ONNX Runtime; "
                "use QUInt8/QInt8 (U8S8, fastest on x86) or QInt8/QInt8"
            )
        if self.half_range == "saturating" and (self.mode != "static" or self.reduce_range):
            raise ConfigError(
                "quant.half_range=saturating picks 7-bit weights per node of a static variant: use quant=static "
                "without quant.reduce_range=true, which already halves every weight"
            )
        if self.mode == "dynamic" and not self.op_types:
            raise ConfigError("quant=dynamic needs quant.op_types, e.g. [MatMul,Gemm]")

    def effective(self) -> dict[str, Any]:
        """The settings this mode uses; nodes_to_exclude only when set, so the keys of earlier variants still hold."""
        keys = [k for k in _QUANT_KEYS[self.mode] if k != "nodes_to_exclude" or self.nodes_to_exclude]
        auto = {"exclude": self.exclude} if self.exclude else {}
        half = {"half_range": self.half_range} if self.half_range == "saturating" else {}
        return {"mode": self.mode} | {k: getattr(self, k) for k in keys} | auto | half

    @property
    def variant(self) -> str:
        return {"fp32": "fp32", "dynamic": "int8_dynamic", "static": f"int8_static_{self.format.lower()}"}[self.mode]


# The conf/quant/*.yaml defaults; a test checks that the files agree.
QUANT_DEFAULTS = {
    "fp32": QuantConfig("fp32"),
    "dynamic": QuantConfig("dynamic", op_types=("MatMul", "Gemm")),
    "static": QuantConfig("static", per_channel=True),
}


@dataclass(frozen=True)
class CalibrationConfig:
    """How static quantization ranges are computed, and from how many held-out faces."""

    method: CalibrationMethod = "minmax"
    num_samples: int = 500
    batch_size: int = 32
    seed: int = 0
    num_bins: int = 2048
    num_quantized_bins: int = 128
    percentile: float = 99.999
    symmetric: bool | None = None

    def __post_init__(self) -> None:
        at_least("calibration", "num_samples", self.num_samples, 1)
        at_least("calibration", "batch_size", self.batch_size, 1)
        at_least("calibration", "num_quantized_bins", self.num_quantized_bins, 2)
        if self.num_bins < self.num_quantized_bins:
            raise ConfigError(
                f"calibration.num_bins={self.num_bins} must be >= calibration.num_quantized_bins="
                f"{self.num_quantized_bins}"
            )
        if not 0 < self.percentile <= 100:
            raise ConfigError(f"calibration.percentile={self.percentile} must be in (0, 100]")
