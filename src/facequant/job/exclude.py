"""Validation pairs for quant.exclude=auto, apart from everything else a job measures: images no evaluated pair
uses, of identities outside calibration, and none of the held-out sensitivity faces; exclusions are never chosen
on test pairs."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import onnx

from facequant import tracking
from facequant.cache.layout import CacheLayout
from facequant.config.running import ExclusionConfig
from facequant.config.settings import Settings
from facequant.data.align import ensure_aligned, face_set
from facequant.data.lfw import pairs_digest
from facequant.data.validation_pairs import validation_images, validation_pairs
from facequant.evaluation.paired import bootstrap_drops
from facequant.evaluation.stats import Interval, min_rounds
from facequant.job.held_out import Sensitivity
from facequant.job.stages import EvalData, Exported, benchmark_model, evaluate_model
from facequant.job.stages_quant import Quantized, quantize_model
from facequant.quant.exclusion import Step, exclusion_artifacts, node_ranking, search, step_metrics, unmet
from facequant.schema import Metric, Tag

log = logging.getLogger(__name__)


def validation_data(data: EvalData, held_out: Sequence[str], exclusion: ExclusionConfig) -> EvalData:
    """The validation pairs as evaluation data of their own, their faces aligned into the cache, so the stages that
    embed and score the test pairs (with their caches) do the same for them."""
    pairs = validation_pairs(validation_images(data.lfw, data.pool, data.calibration_names, held_out), exclusion)
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
        variant = evaluate_model(valid, model, spec, settings.runtime, settings.arithmetic)
        drops = bootstrap_drops(fp32.scores, variant.scores, valid.labels, valid.folds)
        bench = benchmark_model(timing, valid, model, exported.fp32, spec)
        speedup = Interval(bench[Metric.SPEEDUP], bench[Metric.SPEEDUP_CI_LOW], bench[Metric.SPEEDUP_CI_HIGH])
        seconds = time.perf_counter() - start
        return Step(excluded, drops.accuracy, drops.tar_far[1e-3], bench[Metric.LATENCY_P50_MS], speedup, seconds)

    return validate


def exclude_search(
    settings: Settings, layout: CacheLayout, data: EvalData, exported: Exported, source: Path, found: Sensitivity
) -> tuple[Quantized, str]:
    """quant.exclude=auto: search the nodes to keep in float on the validation pairs, log each step, and rename the
    run after the variant it chose."""
    valid = validation_data(data, found.held_out, settings.exclusion)
    name = f"{settings.dataset.name}-validation"
    tracking.log_validation_set(valid.pairs_frame(), name, pairs_digest(valid.pairs), str(data.lfw.images_dir))
    ranked = node_ranking(onnx.load(str(source), load_external_data=False).graph, found.table)
    validate, done = validator(settings, layout, data, exported, valid), []

    def logged(nodes: tuple[str, ...]) -> Step:  # each step is logged as it ends, so a failed search keeps them
        step = validate(nodes)
        tracking.log_metrics(step_metrics(step), step=len(done))
        done.append(step)
        return step

    result = search(ranked, logged, settings.exclusion)
    chosen = result.chosen.excluded
    variant = settings.name_excluding(len(chosen))
    tracking.set_tags({Tag.VARIANT: variant, Tag.RUN_NAME: variant})
    tracking.log_metrics(
        {
            Metric.N_EXCLUDED: len(chosen),
            Metric.EXCLUSION_GATE_MET: float(result.met),
            Metric.N_VALIDATION_PAIRS: len(valid.pairs),
        }
    )
    with tempfile.TemporaryDirectory(prefix="facequant-exclusion-") as tmp:
        tracking.log_artifacts(exclusion_artifacts(result, Path(tmp)))
    if not result.met:
        log.warning("%s: %s", variant, unmet(result))
    quant = replace(settings.quant, exclude=None, nodes_to_exclude=chosen)
    return quantize_model(settings, layout, data, exported, quant), variant
