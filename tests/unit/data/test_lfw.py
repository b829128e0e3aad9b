"""pairs.txt parsing and dataset layout detection, on tiny LFW copies in the official layout."""

import pytest

from facequant.config.sections import DatasetConfig
from facequant.data.lfw import DatasetError, load_lfw, parse_pairs
from helpers import make_lfw, write_pairs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty pairs file"),
        ("ten 300\n", ":1: header"),
        ("1\t1\nA\t1\t2\nB\t1\n", ":3: expected a impostor"),
        ("1\t1\nA\t1\nB\t1\tC\t1\n", ":2: expected a genuine"),
        ("1\t1\nA\tx\t2\nB\t1\tC\t1\n", ":2: image number 'x'"),
        ("1\t2\nA\t1\t2\nB\t1\tC\t1\n", "promises 1 folds x 2 x 2 = 4 pairs, found 2"),
    ],
)
def test_malformed_pairs_name_the_line(tmp_path, text, message):
    with pytest.raises(DatasetError, match=message):
        parse_pairs(write_pairs(tmp_path / "pairs.txt", text))


@pytest.mark.parametrize("images", ["lfw", "lfw_funneled", "lfw-deepfunneled"])
def test_images_folder_is_detected(tmp_path, images):
    lfw = load_lfw(DatasetConfig(root=str(make_lfw(tmp_path, images=images)), folds=1, download=False))
    assert lfw.images_dir == tmp_path / images
    assert lfw.image_count == 6


def test_sklearn_layout_is_detected(tmp_path):
    make_lfw(tmp_path / "lfw_home", images="lfw_funneled")
    assert load_lfw(DatasetConfig(root=str(tmp_path), folds=1, download=False)).images_dir.name == "lfw_funneled"


def test_missing_dataset_says_where_to_put_it(tmp_path):
    with pytest.raises(DatasetError, match=r"LFW not found: .*Set dataset.root"):
        load_lfw(DatasetConfig(root=str(tmp_path / "nowhere"), download=False))


def test_missing_image_is_named(tmp_path):
    make_lfw(tmp_path)
    (tmp_path / "lfw" / "C" / "C_0002.jpg").unlink()
    with pytest.raises(DatasetError, match="1 image.* missing .* C/C_0002.jpg"):
        load_lfw(DatasetConfig(root=str(tmp_path), folds=1, download=False))


def test_more_folds_than_the_file_has(tmp_path):
    with pytest.raises(DatasetError, match="only 1 folds"):
        load_lfw(DatasetConfig(root=str(make_lfw(tmp_path)), folds=2, download=False))


def test_fingerprint_follows_the_pairs_file(tmp_path):
    # caches are keyed by the fingerprint, so two datasets never share aligned faces
    make_lfw(tmp_path)
    a = load_lfw(DatasetConfig(root=str(tmp_path), folds=1, download=False)).fingerprint
    write_pairs(tmp_path / "pairs.txt", "1\t1\nA\t2\t1\nB\t1\tC\t2\n")
    b = load_lfw(DatasetConfig(root=str(tmp_path), folds=1, download=False)).fingerprint
    assert a != b and a.endswith("-6") and b.endswith("-6")


@pytest.mark.parametrize("name", ["..", "../secret", "A/../../x", "."])
def test_names_that_leave_the_images_folder_are_rejected(tmp_path, name):
    text = f"1\t1\nA\t1\t2\n{name}\t1\tC\t2\n"
    with pytest.raises(DatasetError, match=r":3: name .* is not a plain folder name"):
        parse_pairs(write_pairs(tmp_path / "pairs.txt", text))


def test_a_pairs_file_with_a_bom_and_crlf_is_the_same_data(tmp_path):
    make_lfw(tmp_path)
    official = load_lfw(DatasetConfig(root=str(tmp_path), folds=1))
    text = (tmp_path / "pairs.txt").read_text()
    (tmp_path / "pairs.txt").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    windows = load_lfw(DatasetConfig(root=str(tmp_path), folds=1))
    assert windows.pairs == official.pairs and windows.fingerprint == official.fingerprint


def test_a_symlink_out_of_the_root_is_refused_unless_followed(tmp_path):
    root = make_lfw(tmp_path / "lfw")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "lfw" / "C").rename(elsewhere / "C")
    (root / "lfw" / "C").symlink_to(elsewhere / "C")  # a folder outside
    with pytest.raises(DatasetError, match=rf"{root / 'lfw' / 'C'} is a symbolic link out of dataset.root=.* to "):
        load_lfw(DatasetConfig(root=str(root), folds=1))
    followed = load_lfw(DatasetConfig(root=str(root), folds=1, follow_symlinks=True))
    assert followed.pairs[1].right == "C/C_0002.jpg"
    (root / "lfw" / "C").unlink()
    (elsewhere / "C").rename(root / "lfw" / "C")
    (root / "lfw" / "A" / "A_0002.jpg").rename(elsewhere / "A_0002.jpg")
    (root / "lfw" / "A" / "A_0002.jpg").symlink_to(elsewhere / "A_0002.jpg")  # a file outside
    with pytest.raises(DatasetError, match=r"A_0002.jpg is a symbolic link out of dataset.root"):
        load_lfw(DatasetConfig(root=str(root), folds=1))
    (root / "lfw" / "A" / "A_0002.jpg").unlink()
    (root / "lfw" / "A" / "A_0002.jpg").symlink_to("../B/B_0001.jpg")  # a link within the root is read
    assert load_lfw(DatasetConfig(root=str(root), folds=1)).pairs == followed.pairs
