"""Photos read as the camera meant them: every mode Pillow decodes becomes 8-bit RGB, upright per EXIF; content
hashes; and the images that cannot be decoded found before any work, with the reason."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from facequant.data.images import IMAGE_SUFFIXES, ImageError, image_sha256, read_rgb, to_rgb, unreadable_images
from helpers import EXIF_ORIENTATION, photo, truncated_jpeg

RAMP = np.arange(256, dtype=np.uint8).reshape(16, 16)  # every 8-bit value once


def rgb(img: Image.Image) -> np.ndarray:
    out = to_rgb(img)
    assert out.mode == "RGB" and out.size == img.size
    return np.asarray(out)


def test_image_suffixes_are_lower_case_with_the_dot_and_cover_common_formats():
    assert {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".webp"} <= IMAGE_SUFFIXES
    assert all(s.startswith(".") and s == s.lower() for s in IMAGE_SUFFIXES)
    assert not {".txt", ".csv", ".json", ".npz"} & IMAGE_SUFFIXES


def test_sixteen_bit_grey_keeps_its_high_byte_instead_of_clipping_to_white():
    wide = Image.fromarray(RAMP.astype(np.uint16) * 257)  # 0..65535, as a 16-bit scanner writes it
    assert wide.mode.startswith("I;16")
    out = rgb(wide)
    assert (out[..., 0] == RAMP).all() and (out[..., 1] == RAMP).all() and (out[..., 2] == RAMP).all()


def test_32_bit_integer_within_8_bits_is_kept_and_float_is_clipped():
    small = Image.fromarray(RAMP.astype(np.int32))  # mode I, as some PNGs decode, values already 0..255
    assert small.mode == "I"
    assert (rgb(small)[..., 0] == RAMP).all()
    floats = np.linspace(-50, 300, 256, dtype=np.float32).reshape(16, 16)
    out = rgb(Image.fromarray(floats))[..., 0]  # mode F
    assert out.min() == 0 and out.max() == 255
    inside = (floats >= 0) & (floats <= 255)
    assert (out[inside] == floats[inside].astype(np.uint8)).all()


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_is_composited_onto_white(mode):
    colour = (10, 120, 200, 255) if mode == "RGBA" else (90, 255)
    img = Image.new(mode, (8, 8), colour)
    img.paste((0, 0, 0, 0) if mode == "RGBA" else (0, 0), (0, 0, 4, 8))  # left half fully transparent
    out = rgb(img)
    assert (out[:, :4] == 255).all()
    expected = (10, 120, 200) if mode == "RGBA" else (90, 90, 90)
    assert (out[:, 4:] == expected).all()


def test_a_palette_with_a_transparent_entry_shows_white_there():
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    img.info["transparency"] = 0
    img.paste(0, (0, 0, 2, 4))  # the transparent entry on the left
    out = rgb(img)
    assert (out[:, :2] == 255).all() and (out[:, 2:] == (200, 30, 30)).all()


def test_cmyk_and_grey_become_rgb():
    assert (rgb(Image.new("CMYK", (2, 2), (0, 0, 0, 0)))[0, 0] == 255).all()  # no ink: white
    assert (rgb(Image.new("L", (2, 2), 77)) == 77).all()


def test_read_rgb_turns_a_sideways_phone_photo_upright(tmp_path):
    upright = photo("portrait", 1, (40, 60))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 8  # stored turned 90 degrees clockwise: turn it back to display
    upright.transpose(Image.Transpose.ROTATE_270).save(tmp_path / "phone.png", exif=exif)
    assert Image.open(tmp_path / "phone.png").size == (60, 40)  # stored sideways
    shown = read_rgb(tmp_path / "phone.png")
    assert shown.size == (40, 60) and (np.asarray(shown) == np.asarray(upright)).all()


def test_what_cannot_be_decoded_is_an_image_error_naming_the_file(tmp_path):
    (tmp_path / "notes.jpg").write_text("not a photo")
    (tmp_path / "cut.jpg").write_bytes(truncated_jpeg(photo("a", 1)))
    for name in ("notes.jpg", "cut.jpg", "missing.jpg"):
        with pytest.raises(ImageError, match=f"cannot read image .*{name}"):
            read_rgb(tmp_path / name)


def test_the_content_hash_is_sha256_and_follows_an_edit(tmp_path):
    path = tmp_path / "a.png"
    photo("a", 1, (16, 16)).save(path)
    first = image_sha256(path)
    assert first == hashlib.sha256(path.read_bytes()).hexdigest()
    photo("a", 2, (17, 16)).save(path)  # another picture under the same name
    assert image_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest() != first
    with pytest.raises(ImageError, match="missing.png"):
        image_sha256(tmp_path / "missing.png")


def test_unreadable_images_are_named_with_the_reason_unless_their_face_is_known(tmp_path):
    photo("a", 1).save(tmp_path / "good.jpg")
    (tmp_path / "cut.jpg").write_bytes(truncated_jpeg(photo("b", 1)))
    (tmp_path / "text.jpg").write_text("hello")
    names = ["good.jpg", "cut.jpg", "text.jpg", "gone.jpg"]
    bad = unreadable_images(tmp_path, names, lambda sha: False)
    assert [name for name, _ in bad] == ["cut.jpg", "text.jpg", "gone.jpg"]
    reasons = dict(bad)
    assert "truncated" in reasons["cut.jpg"].lower() and "cannot identify image file" in reasons["text.jpg"]
    assert "No such file" in reasons["gone.jpg"]
    # a file whose content already has an aligned face is trusted and not decoded again; a missing one has no hash
    known = {image_sha256(tmp_path / "cut.jpg")}
    assert [name for name, _ in unreadable_images(tmp_path, names, known.__contains__)] == ["text.jpg", "gone.jpg"]
