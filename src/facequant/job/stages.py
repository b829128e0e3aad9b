"""The stages of one job as plain functions: each takes settings and earlier results and returns its own."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from facequant.cache.files import exclusive, key_of, load_npz, save_npz
from facequant.cache.layout import (
    CacheLayout,
    FaceSetIdentity,
    ModelIdentity,
    ScoresIdentity,
)
from facequant.config.running import RuntimeConfig
from facequant.config.settings import Settings
from facequant.config.target import Arithmetic
from facequant.data.align import Aligned, ensure_aligned, face_set, load_aligned
from facequant.data.lfw import Dataset, Pair, identity_index, pairs_digest
from facequant.data.selection import select
from facequant.evaluation.finite import check_finite
from facequant.evaluation.paired import embedding_drift, paired_metrics
from facequant.evaluation.verification import Verification, cosine_scores, verification_metrics
from facequant.models.backbones import ModelInfo, describe, fetch_weights, load_model
from facequant.models.export import cached_parity, export_onnx, model_identity, model_sha256, onnx_file
from facequant.onnxmodel import InputSpec
from facequant.runtime import sessions as runtime
from facequant.runtime.benchmark import Model, measure
from facequant.schema import Metric

log = logging.getLogger(__name__)

PARITY_FACES = 16


@dataclass(frozen=True)
class EvalData:
    """The evaluated pairs and their distinct images, aligned into the cache; faces are loaded on demand.
    Under protocol=all, pairs is empty: every image of names is paired with every other, identity tells genuine."""

    lfw: Dataset
    pairs: tuple[Pair, ...]
    names: list[str]
    faces_id: FaceSetIdentity
    calibration_names: list[str]
    calibration_id: FaceSetIdentity | None
    settings: Settings
    layout: CacheLayout
    computed: int
    pool: list[str] | None = None  # the held-out images calibration is drawn from; None: those no pair uses

    @property
    def all_pairs(self) -> bool:
        return self.settings.dataset.protocol == "all"

    @cached_property
    def identity(self) -> np.ndarray:
        """A dense identity number per evaluated image; names are sorted by identity under protocol=all."""
        return identity_index(self.names)

    @property
    def n_pairs(self) -> int:
        return len(self.names) * (len(self.names) - 1) // 2 if self.all_pairs else len(self.pairs)

    @property
    def labels(self) -> np.ndarray:
        return np.array([p.label for p in self.pairs])

    @property
    def folds(self) -> np.ndarray:
        return np.array([p.fold for p in self.pairs])

    def faces(self, count: int | None = None) -> Aligned:
        """The first count evaluated faces (all by default)."""
        return self.faces_at(range(len(self.names[:count])))

    def faces_at(self, indices: Sequence[int]) -> Aligned:
        """The evaluated faces at these indices of names, loaded alone (all faces would take ~600 MB)."""
        names = [self.names[i] for i in indices]
        subset = replace(self.faces_id, image_sha256=[self.faces_id.image_sha256[i] for i in indices])
        return load_aligned(self.lfw.images_dir, names, subset, self.settings.align, self.layout)

    def calibration_faces(self) -> np.ndarray:
        assert self.calibration_id is not None, "only static variants have calibration faces"
        images = self.lfw.images_dir
        return load_aligned(images, self.calibration_names, self.calibration_id, self.settings.align, self.layout).faces

    def metrics(self) -> dict[Metric, float]:
        return {
            Metric.N_PAIRS: self.n_pairs,
            Metric.N_IMAGES: len(self.names),
            Metric.N_UNREADABLE: len(self.lfw.unreadable),
            Metric.ALIGN_COMPUTED: self.computed,
        }

    @property
    def digest(self) -> str:
        """The dataset fingerprint, with the fold count when only some folds are evaluated; under protocol=all,
        with a key of the evaluated images, which the calibration identities and any subset decide."""
        if self.all_pairs:
            return f"{self.lfw.fingerprint}-a{key_of(self.names)[:8]}"  # MLflow digests hold <= 36 characters
        folds = self.settings.dataset.folds
        return self.lfw.fingerprint + (f"-f{folds}" if folds < 1 + max(p.fold for p in self.lfw.pairs) else "")

    def pairs_frame(self) -> pd.DataFrame:
        """The evaluation set as logged: the pairs, or under protocol=all the images and their identities."""
        if self.all_pairs:
            return pd.DataFrame({"image": self.names, "identity": self.identity})
        rows = [(p.fold, p.label, p.left, p.right) for p in self.pairs]
        return pd.DataFrame(rows, columns=["fold", "label", "left", "right"])

    def calibration_frame(self) -> pd.DataFrame:
        assert self.calibration_id is not None
        return pd.DataFrame({"image": self.calibration_names, "sha256": self.calibration_id.image_sha256})


def prepare_data(settings: Settings, layout: CacheLayout) -> EvalData:
    """Load the dataset, select the evaluated and calibration images, and align every evaluated image."""
    crop = settings.align.crop_settings()
    chosen = select(settings.dataset, settings.calibration, lambda sha: layout.aligned(crop, sha).is_file())
    dataset, names = chosen.dataset, chosen.names
    faces_id = face_set(dataset.images_dir, names, settings.align)
    calib_id = face_set(dataset.images_dir, chosen.calibration, settings.align) if settings.calibration else None
    computed = ensure_aligned(dataset.images_dir, names, faces_id, settings.align, layout)
    return EvalData(
        dataset, chosen.pairs, names, faces_id, chosen.calibration, calib_id, settings, layout, computed, chosen.pool
    )


@dataclass(frozen=True)
class Exported:
    info: ModelInfo
    identity: ModelIdentity
    fp32: Path
    parity: float | None  # None: model=onnx's file is used as it is, nothing was exported
    sample: np.ndarray  # faces as the model takes them: the parity inputs and the logged model's example
    spec: InputSpec  # how faces are fed to the model and its variants

    def metrics(self) -> dict[Metric, float]:
        return {} if self.parity is None else {Metric.ONNX_PARITY: self.parity}


def export_model(settings: Settings, layout: CacheLayout, data: EvalData) -> Exported:
    """The FP32 ONNX model: model=onnx's file as it is, else the weights exported (cached by weights, network,
    preprocessing and exporter). A cached export of a model whose head size the config gives is found without
    building the network, so such a job never imports torch."""
    spec = settings.model.input_spec()
    sample = runtime.preprocess(data.faces(PARITY_FACES).faces, spec)
    if settings.model.name == "onnx":
        path, info, identity = onnx_file(settings.model, spec, sample)
        return Exported(info, identity, path, None, sample, spec)
    weights = fetch_weights(settings.model)
    if settings.model.embedding_size is not None:
        info = describe(settings.model, *weights, settings.model.embedding_size)
        identity = model_identity(info)
        fp32 = layout.fp32_model(identity)
        parity = cached_parity(fp32, info)
        if parity is not None:
            return Exported(info, identity, fp32, parity, sample, spec)
    net, info = load_model(settings.model, weights)
    identity = model_identity(info)
    fp32 = layout.fp32_model(identity)
    return Exported(info, identity, fp32, export_onnx(net, info, fp32, sample), sample, spec)


@dataclass(frozen=True)
class Evaluation:
    verification: Verification
    scores: np.ndarray
    embeddings: np.ndarray  # one row per evaluated image, in EvalData.names order
    size_mib: float
    fallbacks: int
    cached: bool

    def metrics(self) -> dict[Metric, float]:
        return self.verification.as_metrics() | {
            Metric.SIZE_MIB: self.size_mib,
            Metric.ALIGN_FALLBACKS: self.fallbacks,
            Metric.EVAL_CACHED: float(self.cached),
        }

    def drops_from(self, fp32: Evaluation) -> dict[Metric, float]:
        """Every comparison with the FP32 baseline, computed here once; the report reads them."""
        far = 1e-3  # the operating point the metric name gives
        return {
            Metric.ACCURACY_DROP: fp32.verification.accuracy - self.verification.accuracy,
            Metric.TAR_FAR_1E3_DROP: fp32.verification.tar_far[far] - self.verification.tar_far[far],
            Metric.COMPRESSION_RATIO: fp32.size_mib / self.size_mib,
        }


@dataclass
class CachedFaces:
    """The evaluated faces read from the aligned cache batch by batch as embed asks for them (all at once would hold
    ~600 MB for LFW's 7,700 faces), counting the alignment fallbacks as they go."""

    data: EvalData
    fallbacks: int = 0

    def __len__(self) -> int:
        return len(self.data.names)

    def __getitem__(self, part: slice) -> np.ndarray:
        aligned = self.data.faces_at(range(len(self))[part])
        self.fallbacks += aligned.fallbacks  # one batch at a time: embed's prefetch reads in one thread
        return aligned.faces


def embed_faces(
    data: EvalData, model: Path, spec: InputSpec, engine: RuntimeConfig, arithmetic: Arithmetic = "host"
) -> tuple[np.ndarray, int, bool]:
    """Embeddings of every evaluated face (rows in names order), the alignment fallbacks, and whether they came
    from the cache, which keys them by the file's sha256, how it is fed, the runtime with its precision, and the
    aligned set."""
    pairs = "all" if data.all_pairs else pairs_digest(data.pairs)
    flip = data.settings.eval.flip
    feeding = spec.describe() + (" +flip" if flip else "")  # entries without flip keep their earlier keys
    engine_name = runtime.name(engine, arithmetic)
    identity = ScoresIdentity(model_sha256(model), feeding, pairs, data.faces_id.key, engine_name)
    path = data.layout.scores(identity)
    with exclusive(path):
        cached = load_npz(path, ("fallbacks", "embeddings"))
        if cached is not None:
            return cached["embeddings"], int(cached["fallbacks"]), True
        faces = CachedFaces(data)
        emb = runtime.embed(model, faces, spec, data.settings.eval.batch_size, engine, flip, arithmetic)
        save_npz(path, fallbacks=np.array(faces.fallbacks), embeddings=emb)
    return emb, faces.fallbacks, False


def evaluate_model(
    data: EvalData, model: Path, spec: InputSpec, engine: RuntimeConfig = runtime.ORT, arithmetic: Arithmetic = "host"
) -> Evaluation:
    """Pair scores and metrics of a model file on a runtime (or a target's emulated arithmetic), from its (cached)
    embeddings."""
    emb, fallbacks, cached = embed_faces(data, model, spec, engine, arithmetic)
    check_finite(emb, data.names, model)
    index = {name: i for i, name in enumerate(data.names)}
    left = np.array([index[p.left] for p in data.pairs])
    right = np.array([index[p.right] for p in data.pairs])
    scores = cosine_scores(emb, left, right)
    size = model.stat().st_size / 2**20
    return Evaluation(verification_metrics(scores, data.labels, data.folds), scores, emb, size, fallbacks, cached)


@dataclass(frozen=True)
class Paired:
    """The variant against FP32 on the same pairs and images: flips, drop intervals, and per-image drift."""

    metrics: dict[Metric, float]
    cosines: np.ndarray  # per evaluated image, FP32 embedding vs the variant's
    worst: tuple[int, ...]  # indices of the most-drifted images, lowest cosine first


def compare_with_fp32(data: EvalData, variant: Evaluation, fp32: Evaluation, worst: int = 16) -> Paired:
    """Paired statistics (decision flips with McNemar, bootstrap drop intervals, embedding drift)."""
    drift = embedding_drift(fp32.embeddings, variant.embeddings, worst)
    metrics = paired_metrics(fp32.scores, variant.scores, data.labels, data.folds, drift=drift)
    return Paired(metrics, drift.cosines, drift.worst)


def benchmark_model(settings: Settings, data: EvalData, model: Path, fp32: Path, spec: InputSpec) -> dict[str, float]:
    """Paired latency, throughput and speed-up on real faces fed as spec says; the reference is the FP32 file on
    ONNX Runtime, so every variant on every runtime is measured against one baseline."""
    faces = data.faces(settings.benchmark.throughput_batch).faces

    def variant(threads: int) -> Model:
        return runtime.open_session(model, settings.runtime, threads, spec.output).run

    def reference(threads: int) -> Model:
        return runtime.open_session(fp32, runtime.ORT, threads, spec.output).run

    paired = None if settings.is_reference else reference
    return measure(variant, paired, runtime.preprocess(faces, spec), settings.benchmark)
