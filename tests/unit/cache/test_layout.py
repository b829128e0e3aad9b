"""Every cached file's path follows every input that changes its content, and never leaves cache_dir."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from facequant.cache.files import atomic_path, load_npz, save_npz, verified_file, write_file_record
from facequant.cache.layout import (
    CacheLayout,
    CachePathError,
    FaceSetIdentity,
    ModelIdentity,
    RangesIdentity,
    ScoresIdentity,
    VariantIdentity,
)

MODEL = ModelIdentity("ab" * 32, "facenet-pytorch InceptionResnetV1", 128, "per_image", 17, "torch 2.14.1")
VARIANT = VariantIdentity(
    MODEL.key, {"mode": "static", "per_channel": True}, {"method": "minmax"}, "faces1", "onnxruntime 1.32.0"
)
FACES = FaceSetIdentity(("11" * 32, "22" * 32), {"image_size": 160, "margin": 32})
SCORES = ScoresIdentity("cd" * 32, "per_image", "pairs1", FACES.key, "onnxruntime 1.32.0")


def changed(value):
    """A different value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, tuple):
        return value[::-1]
    if isinstance(value, dict):
        return {**value, "extra": 1}
    return f"{value}x"


def paths(layout: CacheLayout, model=MODEL, variant=VARIANT, faces=FACES, scores=SCORES) -> dict[str, object]:
    return {
        "fp32": layout.fp32_model(model),
        "pre": layout.preprocessed_model(model, "onnxruntime 1.32.0"),
        "variant": layout.variant_model(variant, "int8_static_qdq"),
        "scores": layout.scores(scores),
        "faces": faces.key,
    }


@pytest.mark.parametrize(
    ("kind", "identity", "depends"),
    [
        ("model", MODEL, ("fp32", "pre", "variant")),
        ("variant", VARIANT, ("variant",)),
        ("scores", SCORES, ("scores",)),
        ("faces", FACES, ("faces",)),
    ],
)
def test_each_input_changes_the_path(tmp_path, kind, identity, depends):
    layout = CacheLayout(tmp_path)
    base = paths(layout)
    for field in dataclasses.fields(identity):
        other = dataclasses.replace(identity, **{field.name: changed(getattr(identity, field.name))})
        variant = dataclasses.replace(VARIANT, model=other.key) if kind == "model" else VARIANT
        now = paths(layout, **{kind: other, **({"variant": variant} if kind == "model" else {})})
        for name in depends:
            assert now[name] != base[name], f"{kind}.{field.name} does not change the {name} path"


def test_preprocessing_alone_separates_export_and_scores(tmp_path):
    """The bug this layout fixes: same weights, other preprocessing, once shared every cached file."""
    layout = CacheLayout(tmp_path)
    fixed = dataclasses.replace(MODEL, preprocess="fixed")
    assert layout.fp32_model(fixed) != layout.fp32_model(MODEL)
    assert layout.scores(dataclasses.replace(SCORES, preprocess="fixed")) != layout.scores(SCORES)


def test_calibration_ranges_follow_their_inputs_and_sit_beside_their_model(tmp_path):
    layout = CacheLayout(tmp_path)
    ranges = RangesIdentity(MODEL.key, {"method": "minmax", "num_samples": 500}, FACES.key, "onnxruntime 1.32.0")
    path = layout.ranges(ranges)
    assert path.parent == layout.fp32_model(MODEL).parent and path.suffix == ".json"
    for field in dataclasses.fields(ranges):
        other = dataclasses.replace(ranges, **{field.name: changed(getattr(ranges, field.name))})
        assert layout.ranges(other) != path, f"ranges.{field.name} does not change the path"


def test_an_aligned_face_is_keyed_by_image_content_and_crop(tmp_path):
    """Renamed or copied images reuse their face; another crop setting, or other content, does not."""
    layout = CacheLayout(tmp_path)
    crop = {"image_size": 160, "margin": 32}
    face = layout.aligned(crop, "ab" * 32)
    assert face.is_relative_to(layout.aligned_set(crop)) and face.parent.name == "ab"
    assert layout.aligned(dict(reversed(list(crop.items()))), "ab" * 32) == face
    assert layout.aligned({**crop, "margin": 44}, "ab" * 32) != face
    assert layout.aligned(crop, "cd" * 32) != face
    assert layout.aligned_set({**crop, "margin": 44}) != layout.aligned_set(crop)


def test_no_path_leaves_the_cache(tmp_path):
    layout = CacheLayout(tmp_path / "cache")
    assert layout.aligned({"m": 1}, "ab" * 32).is_relative_to(tmp_path / "cache")
    with pytest.raises(CachePathError, match="would leave cache_dir"):
        layout.aligned({"m": 1}, "../../../../etc/passwd")
    with pytest.raises(CachePathError):
        layout.variant_model(VARIANT, "../../../escape")


def test_entries_get_the_mode_of_any_new_file(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) & 0o644 == 0o644


def test_truncated_npz_is_removed_with_its_path_logged(tmp_path, caplog):
    path = tmp_path / "scores.npz"
    save_npz(path, scores=np.arange(1000.0))
    assert load_npz(path, ("scores",))["scores"].sum() == 499500
    path.write_bytes(path.read_bytes()[:200])
    assert load_npz(path, ("scores",)) is None
    assert not path.exists() and str(path) in caplog.text and "BadZipFile" in caplog.text


def test_file_is_trusted_only_with_its_identity_and_sha256(tmp_path, caplog):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"0123456789" * 100)
    write_file_record(model, {"k": 1})
    assert verified_file(model, {"k": 1}) is not None
    assert verified_file(model, {"k": 2}) is None and not model.exists()  # foreign: removed
    model.write_bytes(b"0123456789" * 100)
    write_file_record(model, {"k": 1})
    model.write_bytes(b"0123456789" * 10)  # truncated after it was recorded
    assert verified_file(model, {"k": 1}) is None and not model.exists()
    assert "differs from the recorded" in caplog.text
    model.write_bytes(b"no record")
    (tmp_path / "m.onnx.json").unlink(missing_ok=True)
    assert verified_file(model, {"k": 1}) is None and "no record" in caplog.text


def _convert_slowly(target: str, calls: str) -> None:
    """One job: the cached state_dict at target, converting (slowly, noted in calls) only if no job has."""
    import time

    import torch

    from facequant.models.weights import cached_state_dict

    def convert() -> dict:
        with open(calls, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(1.0)
        return {"w": torch.arange(4.0)}

    cached_state_dict(Path(target), {"test": 1}, convert)


def test_jobs_sharing_a_cache_build_an_entry_once(tmp_path):
    target, calls = tmp_path / "weights" / "state.pt", tmp_path / "calls"
    jobs = [multiprocessing.Process(target=_convert_slowly, args=(str(target), str(calls))) for _ in range(3)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=60)
    assert [job.exitcode for job in jobs] == [0, 0, 0]
    assert len(calls.read_text().split()) == 1  # the others waited on the lock, then found the entry
    assert verified_file(target, {"test": 1}) is not None
