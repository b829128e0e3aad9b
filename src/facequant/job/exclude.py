"""Validation pairs for quant.exclude=auto, apart from everything else a job measures: images no evaluated pair
uses, of identities outside calibration, and none of the held-out sensitivity faces; exclusions are never chosen
on test pairs."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from facequant.cache.layout import CacheLayout
from facequant.config.sections import GateConfig, min_rounds
from facequant.config.settings import Settings
from facequant.data.align import ensure_aligned, face_set
from facequant.data.lfw import Dataset, DatasetError, Pair, identity_of, unpaired_images
from facequant.evaluation.paired import Interval, bootstrap_drops
from facequant.job.stages import EvalData, Exported, benchmark_model, evaluate_model, quantize_model
from facequant.quant.exclusion import Step
from facequant.schema import Metric

FOLDS = 10  # the 10-fold accuracy of the test protocol, on the validation pairs too


def validation_images(
    dataset: Dataset, pool: Sequence[str] | None, calibration: Sequence[str], held_out: Sequence[str]
) -> list[str]:
    """The calibration pool (which no evaluated pair uses; None: LFW's unpaired images) minus the calibration faces'
    identities and the held-out sensitivity faces."""
    pool = unpaired_images(dataset) if pool is None else pool
    calibrated = {identity_of(name) for name in calibration}
    taken = set(held_out)
    return [name for name in pool if identity_of(name) not in calibrated and name not in taken]


def _by_identity(images: Sequence[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for image in images:
        groups.setdefault(identity_of(image), []).append(image)
    return groups


def genuine_pairs(images: Sequence[str], count: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """count same-identity pairs, one per identity per round in a shuffled order, so that identities with hundreds
    of images do not fill the set."""
    queues = []
    for members in _by_identity(images).values():
        pairs = list(itertools.combinations(members, 2))
        queues.append([pairs[i] for i in rng.permutation(len(pairs))])
    queues = [queues[i] for i in rng.permutation(len(queues)) if queues[i]]
    drawn: list[tuple[str, str]] = []
    for depth in range(max((len(q) for q in queues), default=0)):
        drawn += [queue[depth] for queue in queues if depth < len(queue)][: count - len(drawn)]
        if len(drawn) == count:
            return drawn
    raise DatasetError(
        f"gate.genuine={count} but the validation images ({len(images)} images of {len(_by_identity(images))} "
        f"identities, outside calibration and every evaluated pair) give only {len(drawn)} genuine pairs; lower "
        "gate.genuine, or for dataset.protocol=all raise dataset.calibration_pool"
    )


def impostor_pairs(images: Sequence[str], count: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """count distinct pairs of images of two identities, drawn uniformly."""
    identity = np.array([identity_of(name) for name in images])
    possible = (len(images) ** 2 - sum(len(m) ** 2 for m in _by_identity(images).values())) // 2
    if count > possible:
        raise DatasetError(
            f"gate.impostor={count} but the images of the genuine pairs give only {possible} impostor pairs; lower "
            "gate.impostor or raise gate.genuine"
        )
    seen: set[tuple[int, int]] = set()
    while len(seen) < count:
        left, right = rng.integers(0, len(images), (2, count))
        for a, b in zip(left.tolist(), right.tolist(), strict=True):
            if identity[a] != identity[b] and len(seen) < count:
                seen.add((min(a, b), max(a, b)))
    return [(images[a], images[b]) for a, b in sorted(seen)]


def validation_pairs(images: Sequence[str], gate: GateConfig) -> tuple[Pair, ...]:
    """gate.genuine genuine pairs and gate.impostor impostor pairs among the images of those genuine pairs (so no
    image is embedded for impostors alone), each label spread evenly over FOLDS folds."""
    rng = np.random.default_rng(gate.seed)
    genuine = genuine_pairs(images, gate.genuine, rng)
    used = sorted({name for pair in genuine for name in pair})
    impostor = impostor_pairs(used, gate.impostor, rng)
    pairs = []
    for label, drawn in ((1, genuine), (0, impostor)):
        folds = rng.permutation(len(drawn)) % FOLDS
        pairs += [Pair(int(fold), label, left, right) for fold, (left, right) in zip(folds, drawn, strict=True)]
    return tuple(pairs)


def validation_data(data: EvalData, held_out: Sequence[str], gate: GateConfig) -> EvalData:
    """The validation pairs as evaluation data of their own, their faces aligned into the cache, so the stages that
    embed and score the test pairs (with their caches) do the same for them."""
    pairs = validation_pairs(validation_images(data.lfw, data.pool, data.calibration_names, held_out), gate)
    names = list(dict.fromkeys(name for pair in pairs for name in (pair.left, pair.right)))
    settings = data.settings
    faces_id = face_set(data.lfw.images_dir, names, settings.align)
    computed = ensure_aligned(data.lfw.images_dir, names, faces_id, settings.align, data.layout)
    as_pairs = replace(settings, dataset=replace(settings.dataset, protocol="pairs"))
    return replace(data, pairs=pairs, names=names, faces_id=faces_id, settings=as_pairs, computed=computed)


def validator(
    settings: Settings, layout: CacheLayout, data: EvalData, exported: Exported, valid: EvalData
) -> Callable[[tuple[str, ...]], Step]:
    """Build the variant with the given nodes in float (same ranges, cached by its exclusion list) and measure it on
    the validation pairs against FP32: paired-bootstrap drops, and a paired speed-up at the first thread count."""
    spec = exported.spec
    fp32 = evaluate_model(valid, exported.fp32, spec)
    rounds = max(6, min_rounds(settings.benchmark.confidence))  # the fewest that give the configured interval
    timing = replace(
        settings, benchmark=replace(settings.benchmark, threads=settings.benchmark.threads[:1], rounds=rounds)
    )

    def validate(excluded: tuple[str, ...]) -> Step:
        start = time.perf_counter()
        quant = replace(settings.quant, exclude=None, nodes_to_exclude=excluded)
        model = quantize_model(settings, layout, data, exported, quant).path
        variant = evaluate_model(valid, model, spec, settings.runtime)
        drops = bootstrap_drops(fp32.scores, variant.scores, valid.labels, valid.folds)
        bench = benchmark_model(timing, valid, model, exported.fp32, spec)
        speedup = Interval(bench[Metric.SPEEDUP], bench[Metric.SPEEDUP_CI_LOW], bench[Metric.SPEEDUP_CI_HIGH])
        seconds = time.perf_counter() - start
        return Step(excluded, drops.accuracy, drops.tar_far[1e-3], bench[Metric.LATENCY_P50_MS], speedup, seconds)

    return validate
