"""dataset=folder on a tree of generated pictures: every format Pillow reads, EXIF rotation, unreadable files,
stray entries and pairs CSVs."""

import numpy as np
import pytest
from PIL import Image

from facequant.config.sections import ConfigError, DatasetConfig
from facequant.data.folder import list_images, load_folder, parse_pairs_csv
from facequant.data.images import ImageError, read_rgb
from facequant.data.lfw import DatasetError
from facequant.data.selection import select
from helpers import people_tree, photo
from helpers import settings as compose_settings


def select_for(settings, is_aligned):
    """select() with the sections a job hands it."""
    return select(settings.dataset, settings.calibration, is_aligned)


# Calibration draws from the identities no pair uses: here the two singletons.
STATIC = ["quant=static", "calibration.num_samples=2", "sensitivity=false"]


@pytest.fixture
def tree(tmp_path):
    """Five identities in every format Pillow reads, one truncated JPEG and two stray entries (helpers.people_tree)."""
    return people_tree(tmp_path / "people")


def settings(*overrides: str):
    return compose_settings("dataset=folder", *overrides)


def test_every_format_reads_as_upright_8bit_rgb(tree):
    for name in list_images(tree):
        if name != "Dave/broken.jpg":
            img = read_rgb(tree / name)
            assert (img.mode, img.size) == ("RGB", (250, 250)), name
    grey = np.asarray(read_rgb(tree / "Alice" / "grey.png"), np.int16)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    alpha = np.asarray(read_rgb(tree / "Alice" / "alpha.png"))
    assert (alpha[:20, :20] == 255).all() and alpha[100:150, 100:150].std() > 10  # composited on white, picture kept
    sixteen = np.asarray(read_rgb(tree / "Bob" / "sixteen.png"), np.int16)[..., 0]
    original = np.asarray(photo("Bob", 3).convert("L"), np.int16)
    assert np.abs(sixteen - original).max() <= 1  # scaled to 8 bits, not clipped to white
    upright = np.asarray(photo("Alice", 4), np.float32)
    phone = np.asarray(read_rgb(tree / "Alice" / "phone.jpg"), np.float32)
    stored = np.asarray(Image.open(tree / "Alice" / "phone.jpg").convert("RGB"), np.float32)
    assert np.abs(phone - upright).mean() < 3 < np.abs(stored - upright).mean()  # EXIF orientation applied
    cmyk = np.asarray(read_rgb(tree / "Bob" / "print.jpg"), np.float32)
    assert np.abs(cmyk - np.asarray(photo("Bob", 4), np.float32)).mean() < 8
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
        select_for(settings(f"dataset.root={tree}", "dataset.calibration_pool=1"), lambda sha: False)
    chosen = select_for(
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
    chosen = select_for(settings(f"dataset.root={tree}", *csv, *STATIC), lambda sha: False)  # decode all it uses
    assert len(chosen.pairs) == 26 and {p.fold for p in chosen.pairs} == {0}  # one fold, split 10 ways
    assert chosen.pool == ["Carol/only.jpg", "Erin/only.jpg"] and sorted(chosen.calibration) == chosen.pool
    assert "Dave/broken.jpg" not in chosen.names  # no pair uses it, so it is never decoded and never fails
    (tree / "few.csv").write_text("left,right,label\n" + "".join(f"{a},{b},{y}\n" for a, b, y in rows[10:]))
    with pytest.raises(DatasetError, match="3 genuine and 13 impostor pairs in one fold; .* at least 10 of each"):
        select_for(
            settings(f"dataset.root={tree}", "dataset.protocol=pairs", "dataset.pairs=few.csv"), lambda sha: False
        )


def test_folder_config_refuses_contradictions():
    with pytest.raises(ConfigError, match="needs dataset.pairs=<CSV left,right,label"):
        DatasetConfig(root="x", name="folder", protocol="pairs", pairs=None)
    with pytest.raises(ConfigError, match="not used under dataset.protocol=all"):
        DatasetConfig(root="x", name="folder", protocol="all", pairs="pairs.csv")


def test_one_pairs_csv_saved_three_ways_has_one_fingerprint(tree):
    """A BOM and CRLF (as Windows editors save), './' prefixes and quotes are not other pairs."""
    rows = [("Alice/plain.jpg", "Alice/grey.png", 1, 1), ("Alice/plain.jpg", "Bob/a.jpg", 0, 2)]
    plain = "".join(f"{a},{b},{y},{f}\n" for a, b, y, f in rows)
    texts = {
        "plain.csv": ("left,right,label,fold\n" + plain).encode(),
        "windows.csv": b"\xef\xbb\xbf" + ("left,right,label,fold\n" + plain).replace("\n", "\r\n").encode(),
        "dotted.csv": ("left,right,label,fold\n" + "".join(f'./{a},"./{b}",{y},{f}\n' for a, b, y, f in rows)).encode(),
        "other.csv": ("left,right,label,fold\n" + plain.replace("Bob/a.jpg", "Bob/b.gif")).encode(),
    }
    prints = {}
    for name, data in texts.items():
        (tree / name).write_bytes(data)
        prints[name] = load_folder(DatasetConfig(root=str(tree), name="folder", pairs=name, folds=2)).fingerprint
    assert prints["plain.csv"] == prints["windows.csv"] == prints["dotted.csv"] != prints["other.csv"]
