"""dataset=folder on a tree built from real LFW photos: every format Pillow reads, EXIF rotation, unreadable files,
pairs CSVs, and an end-to-end run."""

from pathlib import Path

import mlflow
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from facequant.config.sections import ConfigError, DatasetConfig
from facequant.config.settings import load_settings
from facequant.data.folder import list_images, load_folder, parse_pairs_csv
from facequant.data.images import ImageError, read_rgb
from facequant.data.lfw import DatasetError
from facequant.data.selection import select
from facequant.schema import UNREADABLE_TXT, Metric
from helpers import REPO, job_runs, main, share_aligned

# Calibration draws from the identities no pair uses: here the two singletons.
STATIC = ["quant=static", "calibration.num_samples=2", "sensitivity=false"]
EXIF_ORIENTATION = 0x0112
ROTATE_90_CW = 6  # "rotate 90 CW to display": how phones store a photo taken in portrait


def _lfw(lfw, person: str, number: int) -> Image.Image:
    return Image.open(lfw.images_dir / person / f"{person}_{number:04d}.jpg").convert("RGB")


@pytest.fixture
def tree(lfw, tmp_path):
    """Five identities of real faces in every format the issue names, one corrupt file and two stray entries."""
    root = tmp_path / "people"
    for person in ("Alice", "Bob", "Carol", "Dave", "Erin"):
        (root / person).mkdir(parents=True)
    _lfw(lfw, "Colin_Powell", 1).save(root / "Alice" / "plain.jpg", quality=95)
    _lfw(lfw, "Colin_Powell", 2).convert("L").save(root / "Alice" / "grey.png")
    rgba = _lfw(lfw, "Colin_Powell", 3).convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 255).crop((0, 0, 250, 250)))
    rgba.paste((0, 0, 0, 0), (0, 0, 20, 20))  # a transparent corner
    rgba.save(root / "Alice" / "alpha.png")
    upright = _lfw(lfw, "Colin_Powell", 4)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CW
    upright.transpose(Image.Transpose.ROTATE_90).save(root / "Alice" / "phone.jpg", quality=95, exif=exif)
    _lfw(lfw, "Tony_Blair", 1).save(root / "Bob" / "a.jpg")
    _lfw(lfw, "Tony_Blair", 2).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "Bob" / "b.gif")
    wide = (np.asarray(_lfw(lfw, "Tony_Blair", 3).convert("L"), np.uint16) * 257).astype(np.uint16)
    Image.fromarray(wide).save(root / "Bob" / "sixteen.png")
    _lfw(lfw, "Tony_Blair", 4).convert("CMYK").save(root / "Bob" / "print.jpg")
    _lfw(lfw, "George_W_Bush", 1).save(root / "Carol" / "only.jpg")  # one image: impostor pairs only
    _lfw(lfw, "Gerhard_Schroeder", 1).save(root / "Dave" / "a.jpg")
    _lfw(lfw, "Gerhard_Schroeder", 2).save(root / "Dave" / "b.jpg")
    truncated = (lfw.images_dir / "Tony_Blair" / "Tony_Blair_0005.jpg").read_bytes()[:600]
    (root / "Dave" / "broken.jpg").write_bytes(truncated)
    _lfw(lfw, "Donald_Rumsfeld", 1).save(root / "Erin" / "only.jpg")
    (root / "README.txt").write_text("stray file beside the identity folders")
    (root / "Alice" / "notes.txt").write_text("not an image")
    return root


def settings(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return load_settings(compose(config_name="config", overrides=["dataset=folder", *overrides]))


def test_every_format_reads_as_upright_8bit_rgb(tree, lfw):
    for name in list_images(tree):
        if name != "Dave/broken.jpg":
            img = read_rgb(tree / name)
            assert (img.mode, img.size) == ("RGB", (250, 250)), name
    grey = np.asarray(read_rgb(tree / "Alice" / "grey.png"), np.int16)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    alpha = np.asarray(read_rgb(tree / "Alice" / "alpha.png"))
    assert (alpha[:20, :20] == 255).all() and alpha[100:150, 100:150].std() > 10  # composited on white, face kept
    sixteen = np.asarray(read_rgb(tree / "Bob" / "sixteen.png"), np.int16)[..., 0]
    original = np.asarray(_lfw(lfw, "Tony_Blair", 3).convert("L"), np.int16)
    assert np.abs(sixteen - original).max() <= 1  # scaled to 8 bits, not clipped to white
    upright = np.asarray(_lfw(lfw, "Colin_Powell", 4), np.float32)
    phone = np.asarray(read_rgb(tree / "Alice" / "phone.jpg"), np.float32)
    stored = np.asarray(Image.open(tree / "Alice" / "phone.jpg").convert("RGB"), np.float32)
    assert np.abs(phone - upright).mean() < 3 < np.abs(stored - upright).mean()  # EXIF orientation applied
    cmyk = np.asarray(read_rgb(tree / "Bob" / "print.jpg"), np.float32)
    assert np.abs(cmyk - np.asarray(_lfw(lfw, "Tony_Blair", 4), np.float32)).mean() < 8
    with pytest.raises(ImageError, match="broken.jpg"):
        read_rgb(tree / "Dave" / "broken.jpg")


def test_folder_lists_identity_images_and_ignores_strays(tree):
    images = list_images(tree)
    assert "README.txt" not in images and "Alice/notes.txt" not in images
    assert images == tuple(sorted(images)) and len(images) == 13
    cfg = DatasetConfig(root=str(tree), name="folder", protocol="all", pairs=None)
    dataset = load_folder(cfg)
    assert dataset.name == "folder" and dataset.pairs == () and dataset.images == images
    Image.open(tree / "Bob" / "a.jpg").rotate(5).save(tree / "Bob" / "a.jpg")  # an edited photo, same name
    assert load_folder(cfg).fingerprint != dataset.fingerprint


def test_unreadable_files_are_named_or_skipped_and_counted(tree):
    with pytest.raises(DatasetError, match=r"1 image\(s\) .* Dave/broken.jpg .*dataset.skip_unreadable=true"):
        select(settings(f"dataset.root={tree}", "dataset.calibration_pool=1"), lambda sha: False)
    chosen = select(
        settings(f"dataset.root={tree}", "dataset.calibration_pool=1", "dataset.skip_unreadable=true"),
        lambda sha: False,
    )
    assert chosen.dataset.unreadable == ("Dave/broken.jpg",)
    assert "Dave/broken.jpg" not in chosen.names and len(chosen.names) == 11  # a singleton calibrates


def test_too_few_identities_is_a_clear_error(tree):
    single = tree.parent / "single"
    (single / "Alice").mkdir(parents=True)
    (single / "Alice" / "plain.jpg").write_bytes((tree / "Alice" / "plain.jpg").read_bytes())
    with pytest.raises(DatasetError, match="1 identity; verification needs at least 2"):
        load_folder(DatasetConfig(root=str(single), name="folder", protocol="all", pairs=None))
    with pytest.raises(DatasetError, match="no such folder"):
        load_folder(DatasetConfig(root=str(tree / "nope"), name="folder", protocol="all", pairs=None))


def test_pairs_csv_is_read_and_checked(tree):
    images = list_images(tree)
    good = tree / "pairs.csv"
    good.write_text("left,right,label,fold\nAlice/plain.jpg,Alice/grey.png,1,3\nAlice/plain.jpg,Bob/a.jpg,0,7\n")
    pairs = parse_pairs_csv(good, images)
    assert [(p.fold, p.label, p.left, p.right) for p in pairs] == [
        (0, 1, "Alice/plain.jpg", "Alice/grey.png"),
        (1, 0, "Alice/plain.jpg", "Bob/a.jpg"),
    ]
    cases = {
        "left,right\nAlice/plain.jpg,Bob/a.jpg\n": "columns label are missing",
        "left,right,label\nAlice/plain.jpg,Bob/a.jpg,yes\n": "row 2: label 'yes' must be 1",
        "left,right,label\n../etc/passwd,Bob/a.jpg,0\n": r"row 2: '../etc/passwd' is not '<identity>/<image>'",
        "left,right,label\nAlice/plain.jpg,Zed/z.jpg,0\nAlice/plain.jpg,Alice/grey.png,1\n": "e.g. Zed/z.jpg",
        "left,right,label\nAlice/plain.jpg,Bob/a.jpg,0\n": "every pair has label 0",
        "left,right,label,fold\nAlice/plain.jpg,Bob/a.jpg,0,x\n": "fold 'x' is not an integer",
    }
    for text, message in cases.items():
        bad = tree / "bad.csv"
        bad.write_text(text)
        with pytest.raises(DatasetError, match=message):
            parse_pairs_csv(bad, images)


def test_a_pairs_csv_calibrates_on_the_identities_no_pair_uses(tree):
    """Under a pairs file, static variants calibrate on the identities that no pair names: here the singletons."""
    paired = [i for i in list_images(tree) if not i.startswith(("Carol", "Erin", "Dave/broken"))]
    rows = [(a, b, int(a.split("/")[0] == b.split("/")[0])) for k, a in enumerate(paired) for b in paired[k + 1 :]]
    rows = [r for r in rows if r[2]] + [r for r in rows if not r[2]][:13]
    (tree / "pairs.csv").write_text("left,right,label\n" + "".join(f"{a},{b},{y}\n" for a, b, y in rows))
    csv = ["dataset.protocol=pairs", "dataset.pairs=pairs.csv"]
    chosen = select(settings(f"dataset.root={tree}", *csv, *STATIC), lambda sha: False)  # decode all it uses
    assert len(chosen.pairs) == 26 and {p.fold for p in chosen.pairs} == {0}  # one fold, split 10 ways
    assert chosen.pool == ["Carol/only.jpg", "Erin/only.jpg"] and sorted(chosen.calibration) == chosen.pool
    assert "Dave/broken.jpg" not in chosen.names  # no pair uses it, so it is never decoded and never fails
    (tree / "few.csv").write_text("left,right,label\n" + "".join(f"{a},{b},{y}\n" for a, b, y in rows[10:]))
    with pytest.raises(DatasetError, match="3 genuine and 13 impostor pairs in one fold; .* at least 10 of each"):
        select(settings(f"dataset.root={tree}", "dataset.protocol=pairs", "dataset.pairs=few.csv"), lambda sha: False)


def test_folder_config_refuses_contradictions():
    with pytest.raises(ConfigError, match="needs dataset.pairs=<CSV left,right,label"):
        DatasetConfig(root="x", name="folder", protocol="pairs", pairs=None)
    with pytest.raises(ConfigError, match="not used under dataset.protocol=all"):
        DatasetConfig(root="x", name="folder", protocol="all", pairs="pairs.csv")


def test_folder_run_end_to_end(tree, sweep, tmp_path):
    """Every pair of the readable images, the corrupt one skipped, counted and listed."""
    share_aligned(sweep[0], tmp_path, "onnx")  # the FP32 export; the tree's faces are new
    base = ["dataset=folder", f"dataset.root={tree}", "dataset.calibration_pool=1", "benchmark.threads=[1]"]
    proc = main(tmp_path, *base, "dataset.skip_unreadable=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = job_runs(tmp_path).iloc[0]
    metric = lambda name: run[f"metrics.{name}"]  # noqa: E731
    assert run["status"] == "FINISHED" and metric(Metric.N_UNREADABLE) == 1 and metric(Metric.N_IMAGES) == 11
    # one singleton calibrates; of Alice 4, Bob 4, Dave 2 and a singleton: 6 + 6 + 1 genuine pairs
    assert metric(Metric.N_GENUINE_PAIRS) == 13 and metric(Metric.N_IMPOSTOR_PAIRS) == 55 - 13
    assert metric(Metric.ROC_AUC) > 0.9  # real faces of four people, in six formats, still verify
    listed = mlflow.MlflowClient().download_artifacts(run["run_id"], UNREADABLE_TXT, str(tmp_path))
    assert Path(listed).read_text().split() == ["Dave/broken.jpg"]
