"""The run schema: the name of every tag, param and metric a job writes, and the typed record readers get back.

Writers (the pipeline, through tracking) and readers (the report, tests, benchmarks) use these names only,
so a renamed metric breaks in one place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Tag(StrEnum):
    """Run tags: identity of the variant and of the data, and the sweep structure."""

    VARIANT = "variant"
    VARIANT_KEY = "variant_key"  # hash of the effective settings: runs with equal keys are repeats
    IS_BASELINE = "is_baseline"
    GIT_COMMIT = "git_commit"
    MODEL = "model"
    DATASET_FINGERPRINT = "dataset_fingerprint"
    FAR_NOTE = "far_note"
    ERROR = "error"
    SWEEP = "facequant_sweep"
    SWEEP_OVERRIDES = "sweep.overrides"
    SWEEP_JOBS = "sweep.jobs"
    SWEEP_DROPPED = "sweep.dropped_repeats"
    SWEEP_LOST = "sweep.lost_runs"  # job runs whose process died (a lost worker); the sweep ended them FAILED
    KERNEL_WARNING = "int8_kernel_warning"  # the runtime's integer kernels disagree with the QDQ model's arithmetic
    HOST = "host"  # the machine and process that ran a job: which worker, when jobs run on a cluster
    PID = "pid"
    COMPARISON = "facequant_comparison"
    PARENT = "mlflow.parentRunId"
    RUN_NAME = "mlflow.runName"


class Param(StrEnum):
    """Params that readers use; the job logs the whole flattened config, these among them."""

    MODEL_NAME = "model.name"
    EVAL_FLIP = "eval.flip"
    DATASET_NAME = "dataset.name"
    DATASET_ROOT = "dataset.root"
    DATASET_PAIRS = "dataset.pairs"
    DATASET_FOLDS = "dataset.folds"
    DATASET_PROTOCOL = "dataset.protocol"
    DATASET_CALIBRATION_POOL = "dataset.calibration_pool"
    DATASET_SEED = "dataset.seed"
    QUANT_MODE = "quant.mode"
    QUANT_FORMAT = "quant.format"
    QUANT_WEIGHT_TYPE = "quant.weight_type"
    QUANT_ACTIVATION_TYPE = "quant.activation_type"
    QUANT_PER_CHANNEL = "quant.per_channel"
    QUANT_REDUCE_RANGE = "quant.reduce_range"
    QUANT_OP_TYPES = "quant.op_types"
    QUANT_SCHEME = "quant.scheme"
    CALIBRATION_METHOD = "calibration.method"
    CALIBRATION_NUM_SAMPLES = "calibration.num_samples"
    CALIBRATION_SEED = "calibration.seed"
    CALIBRATION_NUM_BINS = "calibration.num_bins"
    ALIGN_MARGIN = "align.margin"
    ALIGN_SELECTION = "align.selection_method"
    BENCHMARK_THREADS = "benchmark.threads"
    BENCHMARK_WARMUP = "benchmark.warmup"
    BENCHMARK_ITERATIONS = "benchmark.iterations"
    BENCHMARK_LATENCY_BATCH = "benchmark.latency_batch"
    BENCHMARK_THROUGHPUT_BATCH = "benchmark.throughput_batch"
    BENCHMARK_ROUNDS = "benchmark.rounds"
    BENCHMARK_CONFIDENCE = "benchmark.confidence"
    RUNTIME_NAME = "runtime.name"
    RUNTIME_PRECISION = "runtime.precision"
    RUNTIME_VERSION = "runtime.version"  # e.g. "openvino 2026.4.1"
    RUNTIME_INFERENCE_PRECISION = "runtime.inference_precision"  # what the compiled model reports it runs in
    GRAPH_OPTIMIZATION = "benchmark.graph_optimization"
    ONNX_OPSET = "onnx.opset"
    SWEEP_DIR = "sweep.dir"
    CPU_MODEL = "cpu.model"
    CPU_ISA = "cpu.isa"
    INPUT_CONTRACT = "input.contract"  # what a deployment must feed the model, and what it returns
    INPUT_SPEC = "input.spec"  # the same as JSON (InputSpec fields and the aligned face size), for facequant.deploy
    ONNX_SHA256 = "onnx.sha256"  # the evaluated model file: runs of one file under several targets share it
    TARGET_ISA = "target.isa"  # the CPU the variant's figures hold for: avx2, vnni or amx
    TARGET_HOST = "target.host"  # the ISA of the machine that ran the job
    TARGET_ARITHMETIC = "target.arithmetic"  # host (its real kernels), exact or avx2 (emulated)
    TARGET_SPEED_MEASURED = "target.speed_measured"  # True when the host is the target
    TARGET_KERNEL_FLOOR = "target.kernel_cosine_floor"
    TARGET_MAX_SATURATION = "target.max_saturation"
    ENV_LOCK_SHA256 = "env.lock_sha256"  # the requirements lock the environment was installed from
    ENV_LOCK_DRIFT = "env.lock_drift"  # installed versions that differ from that lock, or "none"
    VERSION_ONNXRUNTIME = "version.onnxruntime"
    VERSION_TORCH = "version.torch"
    VERSION_ONNX = "version.onnx"
    VERSION_MLFLOW = "version.mlflow"
    MODEL_SOURCE = "model_info.source"
    MODEL_ARCHITECTURE = "model_info.architecture"
    MODEL_INPUT = "model_info.input"
    MODEL_EMBEDDING_SIZE = "model_info.embedding_size"
    MODEL_PREPROCESS = "model_info.preprocess"
    MODEL_WEIGHTS_SHA256 = "model_info.weights_sha256"
    EXCLUSION_MAX_DROP = "exclusion.max_drop"  # quant.exclude=auto's goal on the validation pairs
    EXCLUSION_MAX_TAR_DROP = "exclusion.max_tar_drop"
    GATE_MAX_DROP = "gate.max_drop"  # the same bounds, as runs logged them before the block was renamed
    GATE_MAX_TAR_DROP = "gate.max_tar_drop"
    SENSITIVITY_FACES = "sensitivity_faces"  # held-out faces of the per-tensor sensitivity, when it was measured


class Metric(StrEnum):
    """Every metric a job logs; docs/runs-and-metrics.md documents each."""

    ACCURACY = "accuracy"
    ACCURACY_STD = "accuracy_std"
    THRESHOLD = "threshold"
    THRESHOLD_ACCURACY = "threshold_accuracy"
    TAR_FAR_1E3 = "tar_far_1e-3"
    TAR_FAR_1E4 = "tar_far_1e-4"
    TAR_FAR_1E5 = "tar_far_1e-5"  # protocol=all only, as are 1e-6 and the pair counts
    TAR_FAR_1E6 = "tar_far_1e-6"
    N_GENUINE_PAIRS = "n_genuine_pairs"
    N_IMPOSTOR_PAIRS = "n_impostor_pairs"
    FALSE_ACCEPTS_1E3 = "false_accepts_at_far_1e-3"
    FALSE_ACCEPTS_1E4 = "false_accepts_at_far_1e-4"
    FAR_RESOLUTION = "far_resolution"
    ROC_AUC = "roc_auc"
    EER = "eer"
    GENUINE_MEAN = "genuine_mean"
    GENUINE_STD = "genuine_std"
    IMPOSTOR_MEAN = "impostor_mean"
    IMPOSTOR_STD = "impostor_std"
    SIZE_MIB = "size_mib"
    LATENCY_P50_MS = "latency_p50_ms"
    LATENCY_P95_MS = "latency_p95_ms"
    LATENCY_MEAN_MS = "latency_mean_ms"
    THROUGHPUT_IPS = "throughput_ips"
    SPEEDUP = "speedup"  # median per-round FP32/variant latency ratio at the first benchmark.threads
    SPEEDUP_CI_LOW = "speedup_ci_low"
    SPEEDUP_CI_HIGH = "speedup_ci_high"
    ACCURACY_DROP = "accuracy_drop"
    TAR_FAR_1E3_DROP = "tar_far_1e-3_drop"
    TAR_FAR_1E5_DROP = "tar_far_1e-5_drop"
    TAR_FAR_1E6_DROP = "tar_far_1e-6_drop"
    # Paired comparison with FP32 on the same pairs (facequant.paired): bootstrap intervals of the drops,
    ACCURACY_DROP_CI_LOW = "accuracy_drop_ci_low"
    ACCURACY_DROP_CI_HIGH = "accuracy_drop_ci_high"
    TAR_FAR_1E3_DROP_CI_LOW = "tar_far_1e-3_drop_ci_low"
    TAR_FAR_1E3_DROP_CI_HIGH = "tar_far_1e-3_drop_ci_high"
    TAR_FAR_1E5_DROP_CI_LOW = "tar_far_1e-5_drop_ci_low"
    TAR_FAR_1E5_DROP_CI_HIGH = "tar_far_1e-5_drop_ci_high"
    TAR_FAR_1E6_DROP_CI_LOW = "tar_far_1e-6_drop_ci_low"
    TAR_FAR_1E6_DROP_CI_HIGH = "tar_far_1e-6_drop_ci_high"
    # decisions flipped at FP32's accuracy threshold and at its FAR threshold, with McNemar's exact p-value,
    FLIPS_ACC = "flips_acc"
    FLIPS_ACC_FIXED = "flips_acc_fixed"
    FLIPS_ACC_BROKEN = "flips_acc_broken"
    MCNEMAR_P_ACC = "mcnemar_p_acc"
    FLIPS_FAR_1E3 = "flips_far_1e-3"
    FLIPS_FAR_1E3_FIXED = "flips_far_1e-3_fixed"
    FLIPS_FAR_1E3_BROKEN = "flips_far_1e-3_broken"
    MCNEMAR_P_FAR_1E3 = "mcnemar_p_far_1e-3"
    FLIPS_FAR_1E5 = "flips_far_1e-5"
    FLIPS_FAR_1E5_FIXED = "flips_far_1e-5_fixed"
    FLIPS_FAR_1E5_BROKEN = "flips_far_1e-5_broken"
    MCNEMAR_P_FAR_1E5 = "mcnemar_p_far_1e-5"
    FLIPS_FAR_1E6 = "flips_far_1e-6"
    FLIPS_FAR_1E6_FIXED = "flips_far_1e-6_fixed"
    FLIPS_FAR_1E6_BROKEN = "flips_far_1e-6_broken"
    MCNEMAR_P_FAR_1E6 = "mcnemar_p_far_1e-6"
    # and the cosine between each image's FP32 and variant embeddings.
    EMBEDDING_COSINE_MEAN = "embedding_cosine_mean"
    EMBEDDING_COSINE_P01 = "embedding_cosine_p01"
    EMBEDDING_COSINE_MIN = "embedding_cosine_min"
    COMPRESSION_RATIO = "compression_ratio"
    # Per-tensor sensitivity of a static QDQ variant on held-out faces (facequant.sensitivity): SQNR in dB of the
    # quantized activations against FP32's, and of the dequantized weights against the FP32 weights.
    SQNR_MIN_DB = "sqnr_min_db"
    SQNR_MEDIAN_DB = "sqnr_median_db"
    LOCAL_SQNR_MIN_DB = "local_sqnr_min_db"  # an activation's own quantization alone, before vs after its QDQ
    WEIGHT_SQNR_MIN_DB = "weight_sqnr_min_db"
    # The variant's embeddings from the runtime's integer kernels against its QDQ graph run in float (as written).
    KERNEL_COSINE_MEAN = "int8_kernel_cosine_mean"
    KERNEL_COSINE_MIN = "int8_kernel_cosine_min"
    # under the target's arithmetic (target.isa): the most saturated node's share of outputs, and how many nodes
    # exceed target.max_saturation, on the held-out faces; half-range weights chosen by the avx2 preset
    SATURATION_MAX = "int8_saturation_max"
    SATURATING_NODES = "int8_saturating_nodes"
    HALF_RANGE_NODES = "int8_half_range_nodes"
    # quant.exclude=auto (facequant.exclusion): per search step (the metric's step), on the validation pairs
    VALIDATION_EXCLUDED = "validation_excluded"  # nodes kept in float at this step
    VALIDATION_ACCURACY_DROP = "validation_accuracy_drop"
    VALIDATION_ACCURACY_DROP_CI_HIGH = "validation_accuracy_drop_ci_high"
    VALIDATION_TAR_FAR_1E3_DROP = "validation_tar_far_1e3_drop"
    VALIDATION_TAR_FAR_1E3_DROP_CI_HIGH = "validation_tar_far_1e3_drop_ci_high"
    VALIDATION_LATENCY_P50_MS = "validation_latency_p50_ms"
    VALIDATION_SPEEDUP = "validation_speedup"
    N_EXCLUDED = "n_excluded"  # nodes the search kept in float in the evaluated variant
    EXCLUSION_GATE_MET = "exclusion_gate_met"  # 1 when the evaluated variant held the gate on the validation pairs
    N_VALIDATION_PAIRS = "n_validation_pairs"
    ONNX_PARITY = "onnx_parity_max_abs_diff"
    N_PAIRS = "n_pairs"
    N_IMAGES = "n_images"
    N_UNREADABLE = "n_unreadable"  # images left out because Pillow cannot decode them (dataset.skip_unreadable)
    ALIGN_FALLBACKS = "align_fallbacks"
    ALIGN_COMPUTED = "align_computed"
    EVAL_CACHED = "eval_cached"
    TIME_ALIGN = "time_align_s"
    TIME_EXPORT = "time_export_s"
    TIME_QUANTIZE = "time_quantize_s"
    TIME_SENSITIVITY = "time_sensitivity_s"
    TIME_EXCLUDE = "time_exclude_s"  # the whole quant.exclude=auto search
    TIME_EVALUATE = "time_evaluate_s"
    TIME_BENCHMARK = "time_benchmark_s"
    TIME_LOG_ARTIFACTS = "time_log_artifacts_s"


# The operating points of the pairs protocol, with the metric names of each.
TAR_AT_FAR = {1e-3: Metric.TAR_FAR_1E3, 1e-4: Metric.TAR_FAR_1E4}
FALSE_ACCEPTS_AT_FAR = {1e-3: Metric.FALSE_ACCEPTS_1E3, 1e-4: Metric.FALSE_ACCEPTS_1E4}
# protocol=all resolves lower FARs; one it cannot resolve is not logged.
ALL_TAR_AT_FAR = TAR_AT_FAR | {1e-5: Metric.TAR_FAR_1E5, 1e-6: Metric.TAR_FAR_1E6}
# The TAR drops against FP32 (1e-3 in both protocols, 1e-5 and 1e-6 under all), each with its interval.
TAR_DROP_AT_FAR = {
    1e-3: (Metric.TAR_FAR_1E3_DROP, Metric.TAR_FAR_1E3_DROP_CI_LOW, Metric.TAR_FAR_1E3_DROP_CI_HIGH),
    1e-5: (Metric.TAR_FAR_1E5_DROP, Metric.TAR_FAR_1E5_DROP_CI_LOW, Metric.TAR_FAR_1E5_DROP_CI_HIGH),
    1e-6: (Metric.TAR_FAR_1E6_DROP, Metric.TAR_FAR_1E6_DROP_CI_LOW, Metric.TAR_FAR_1E6_DROP_CI_HIGH),
}
# Decisions flipped at FP32's FAR threshold: (flips, fixed, broken, McNemar p).
FLIPS_AT_FAR = {
    1e-3: (Metric.FLIPS_FAR_1E3, Metric.FLIPS_FAR_1E3_FIXED, Metric.FLIPS_FAR_1E3_BROKEN, Metric.MCNEMAR_P_FAR_1E3),
    1e-5: (Metric.FLIPS_FAR_1E5, Metric.FLIPS_FAR_1E5_FIXED, Metric.FLIPS_FAR_1E5_BROKEN, Metric.MCNEMAR_P_FAR_1E5),
    1e-6: (Metric.FLIPS_FAR_1E6, Metric.FLIPS_FAR_1E6_FIXED, Metric.FLIPS_FAR_1E6_BROKEN, Metric.MCNEMAR_P_FAR_1E6),
}

# The metrics the benchmark logs once per thread count N, as at_threads(metric, N).
PER_THREADS = (
    Metric.LATENCY_P50_MS,
    Metric.SPEEDUP,
    Metric.SPEEDUP_CI_LOW,
    Metric.SPEEDUP_CI_HIGH,
    Metric.THROUGHPUT_IPS,
)


def far_text(far: float) -> str:
    """1e-05 -> '1e-5', as the metric names write a FAR."""
    return f"{far:.0e}".replace("e-0", "e-")


def at_threads(metric: Metric, threads: int) -> str:
    """The metric's name at N intra-op threads: latency_p50_ms_t2, speedup_t2, speedup_t2_ci_low."""
    if metric not in PER_THREADS:
        raise ValueError(f"{metric} is not logged per thread count")
    head, ci, tail = metric.value.partition("_ci_")
    return f"{head}_t{threads}" + (f"_ci_{tail}" if ci else "")


# Wall time of each pipeline stage.
STAGE_TIME = {
    "align": Metric.TIME_ALIGN,
    "export": Metric.TIME_EXPORT,
    "quantize": Metric.TIME_QUANTIZE,
    "sensitivity": Metric.TIME_SENSITIVITY,
    "exclude": Metric.TIME_EXCLUDE,
    "evaluate": Metric.TIME_EVALUATE,
    "benchmark": Metric.TIME_BENCHMARK,
    "log_artifacts": Metric.TIME_LOG_ARTIFACTS,
}

# Artifacts of a job run.
SCORES_CSV = "scores.csv"
CONFIG_YAML = "config.yaml"
ENVIRONMENT_TXT = "environment.txt"  # every installed distribution, name==version, with the lock's hash
ROC_PNG = "roc.png"
HISTOGRAM_PNG = "score_histogram.png"
DRIFT_CSV = "embedding_cosine.csv"  # every evaluated image's FP32-vs-variant embedding cosine
DRIFT_PNG = "drift_faces.png"  # the 16 most-drifted faces
GENUINE_CSV = "genuine_scores.csv"  # protocol=all: every genuine pair's images and score
IMPOSTOR_HISTOGRAM_CSV = "impostor_histogram.csv"  # protocol=all: impostor counts per score bin of 1e-4
UNREADABLE_TXT = "unreadable.txt"  # dataset.skip_unreadable=true: the images left out, one per line
ROC_CSV = "roc.csv"  # protocol=all: FAR and TAR at every bin edge
SENSITIVITY_CSV = "sensitivity.csv"  # one row per quantized tensor, columns SENSITIVITY_COLUMNS
SENSITIVITY_PNG = "sensitivity.png"  # SQNR along the network's depth
# kind (activation, weight or bias), the node producing (activation) or reading (weight) the tensor, its op type,
# the tensor, its SQNR in dB against FP32 (the error accumulated up to it) and local (its own quantization alone,
# before vs after QDQ), and the node's position in the FP32 graph's topological order (1-based; 0: the model input).
SENSITIVITY_COLUMNS = ("kind", "node", "op_type", "tensor", "sqnr_db", "local_sqnr_db", "position")
SATURATION_CSV = "saturation.csv"  # per node under AVX2's pair sums on the held-out faces, columns SATURATION_COLUMNS
SATURATION_COLUMNS = ("node", "op_type", "outputs_fraction", "pair_sums_fraction")
HALF_RANGE_TXT = "half_range_weights.txt"  # the weights the avx2 preset quantized to 7 bits, one a line
EXCLUSION_CSV = "exclusion_steps.csv"  # quant.exclude=auto: one row per search step
EXCLUDED_TXT = "excluded_nodes.txt"  # quant.exclude=auto: the nodes kept in float, worst first
MODEL_ARTIFACT = "model"
EVALUATION_CONTEXT = "evaluation"
CALIBRATION_CONTEXT = "calibration"
SENSITIVITY_CONTEXT = "sensitivity"
VALIDATION_CONTEXT = "validation"
REPORT_DIR = "report"


@dataclass(frozen=True)
class GroupKey:
    """Runs are comparable only within one model's weights, one dataset, one fold count, one protocol and one way of
    embedding (with or without flip fusion)."""

    weights_sha256: str | None
    dataset_fingerprint: str | None
    folds: str | None
    model: str | None
    protocol: str = "pairs"
    flip: bool = False


@dataclass(frozen=True)
class RunRecord:
    """One job run as readers see it: identity, status and the values logged under the schema's names."""

    run_id: str
    experiment_id: str
    name: str
    status: str
    start_time: int
    tags: Mapping[str, str]
    params: Mapping[str, str]
    metrics: Mapping[str, float]

    def metric(self, name: str) -> float:
        """The metric's value, NaN when the run did not log it."""
        return float(self.metrics.get(name, math.nan))

    def param(self, name: Param) -> str | None:
        return self.params.get(name)

    def tag(self, name: Tag) -> str | None:
        return self.tags.get(name)

    @property
    def is_baseline(self) -> bool:
        return self.tags.get(Tag.IS_BASELINE) == "true"

    @property
    def threads(self) -> tuple[int, ...]:
        """The benchmark's thread counts; the unsuffixed latency and speed-up metrics are at the first."""
        value = self.params.get(Param.BENCHMARK_THREADS) or ""
        return tuple(int(t) for t in value.split(",") if t.strip().isdigit())

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED"

    @property
    def variant_key(self) -> str:
        """Repeats of the same effective settings share it; older runs without the tag fall back to the name."""
        return self.tags.get(Tag.VARIANT_KEY) or self.name

    @property
    def error(self) -> str | None:
        return self.tags.get(Tag.ERROR)

    @property
    def group(self) -> GroupKey:
        return GroupKey(
            self.params.get(Param.MODEL_WEIGHTS_SHA256),
            self.tags.get(Tag.DATASET_FINGERPRINT),
            self.params.get(Param.DATASET_FOLDS),
            self.params.get(Param.MODEL_NAME),
            self.protocol,
            self.params.get(Param.EVAL_FLIP) == "True",
        )

    @property
    def protocol(self) -> str:
        """pairs (View 2) or all (every image against every other); runs from before the option are pairs."""
        return self.params.get(Param.DATASET_PROTOCOL) or "pairs"
