"""The stages on the real model and the first LFW fold: preprocessing is part of every cached result."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from facequant.cache.layout import CacheLayout
from facequant.config.running import BenchmarkConfig, MlflowConfig, RuntimeConfig
from facequant.config.sections import QUANT_DEFAULTS, AlignConfig, CalibrationConfig, DatasetConfig, ModelConfig
from facequant.config.settings import Settings
from facequant.config.target import TargetConfig
from facequant.data.lfw import pair_images
from facequant.job import stages_quant
from facequant.job.stages import EvalData, evaluate_model, export_model, prepare_data
from facequant.job.stages_quant import quantize_model
from facequant.models.export import read_metadata
from helpers import WEIGHTS_DIR, share_aligned


@pytest.fixture(scope="module")
def job(lfw_root, msceleb128, sweep, tmp_path_factory):
    """Settings of a quick msceleb128 job and its data, in a fresh cache but for the sweep's aligned faces and a copy
    of its models (the per_image export, its pre-processed graph and the dynamic variant: no export is redone; copied,
    not linked, as a test truncates one in place); scores are not shared, so every evaluation here is computed."""
    workdir = tmp_path_factory.mktemp("stages")
    share_aligned(sweep[0], workdir)
    shutil.copytree(sweep[0] / "cache" / "onnx", workdir / "cache" / "onnx")
    cache = workdir / "cache"
    settings = Settings(
        model=ModelConfig("msceleb128", "per_image", str(WEIGHTS_DIR)),
        dataset=DatasetConfig(root=str(lfw_root), folds=1),
        align=AlignConfig(),
        quant=QUANT_DEFAULTS["fp32"],
        calibration=None,
        runtime=RuntimeConfig(),
        benchmark=BenchmarkConfig(),
        mlflow=MlflowConfig(),
        cache_dir=cache,
    )
    layout = CacheLayout(cache)
    return settings, layout, first_pairs(prepare_data(settings, layout), 150)


def first_pairs(data: EvalData, per_class: int) -> EvalData:
    """The fold's first per_class genuine and impostor pairs and their faces: what these tests compare does not need
    the whole fold, and each embedding pass over it costs ~15 s."""
    pairs = data.pairs[:per_class] + data.pairs[300 : 300 + per_class]
    assert {p.label for p in pairs[:per_class]} == {1} and {p.label for p in pairs[per_class:]} == {0}
    names = pair_images(pairs)
    index = {name: i for i, name in enumerate(data.names)}
    faces = replace(data.faces_id, image_sha256=tuple(data.faces_id.image_sha256[index[n]] for n in names))
    return replace(data, pairs=pairs, names=names, faces_id=faces)


def test_other_preprocessing_misses_every_cache(job):
    settings, layout, data = job
    per_image = export_model(settings, layout, data)
    fixed_settings = replace(settings, model=replace(settings.model, preprocess="fixed"))
    fixed = export_model(fixed_settings, layout, data)
    assert fixed.fp32 != per_image.fp32
    assert read_metadata(fixed.fp32)["facequant.preprocess"] == "fixed"
    assert read_metadata(per_image.fp32)["facequant.preprocess"] == "per_image"
    right = evaluate_model(data, per_image.fp32, per_image.spec)
    wrong = evaluate_model(data, fixed.fp32, fixed.spec)
    assert not right.cached and not wrong.cached  # the second is not served the first's scores
    assert right.verification.accuracy > 0.97
    assert not np.allclose(wrong.scores, right.scores, atol=1e-3)  # 300 pairs can tie in accuracy; scores cannot


def test_truncated_variant_is_rebuilt_before_its_cached_scores_are_used(job, caplog):
    settings, layout, data = job
    dynamic = replace(settings, quant=QUANT_DEFAULTS["dynamic"])
    exported = export_model(dynamic, layout, data)
    first = quantize_model(dynamic, layout, data, exported)
    before = evaluate_model(data, first.path, exported.spec)
    first.path.write_bytes(first.path.read_bytes()[:1_000_000])
    again = quantize_model(dynamic, layout, data, exported)
    assert again.built and "differs from the recorded" in caplog.text
    after = evaluate_model(data, again.path, exported.spec)
    assert after.size_mib == pytest.approx(before.size_mib) and after.size_mib > 80
    assert after.verification.accuracy == before.verification.accuracy


def test_the_avx2_presets_weights_are_measured_once_per_full_range_file(job, monkeypatch):
    """The avx2 preset's saturation pass (an emulation) runs once; later jobs and exclusion steps read its list."""
    settings, layout, _ = job
    preset = replace(
        settings,
        quant=replace(QUANT_DEFAULTS["static"], half_range="saturating"),
        calibration=CalibrationConfig(num_samples=16, batch_size=16),
        target=TargetConfig("avx2", saturation_faces=16),
    )
    data = prepare_data(preset, layout)
    exported = export_model(preset, layout, data)
    first = quantize_model(preset, layout, data, exported)

    def measured(*_):
        raise AssertionError("saturation measured again")

    monkeypatch.setattr(stages_quant, "saturation", measured)
    again = quantize_model(preset, layout, data, exported)
    assert not again.built and again.half_range == first.half_range and again.path == first.path
    tighter = replace(preset, target=replace(preset.target, max_saturation=0.0))  # another bound: measured anew
    with pytest.raises(AssertionError, match="measured again"):
        quantize_model(tighter, layout, data, exported)
