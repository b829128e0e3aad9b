"""Reading photos as the camera meant them: any mode Pillow decodes becomes 8-bit RGB, upright per EXIF."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Extensions Pillow can open, lower-case with the dot: what a folder dataset treats as an image.
IMAGE_SUFFIXES = frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)
WHITE = (255, 255, 255)


class ImageError(RuntimeError):
    """An image file cannot be read."""


@cache
def _sha256(path: Path, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def image_sha256(path: Path) -> str:
    """The file's content hash, computed once per process while its size and mtime stay the same."""
    try:
        stat = path.stat()
        return _sha256(path, stat.st_mtime_ns, stat.st_size)
    except OSError as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from exc


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB: 16/32-bit greyscale scaled (Pillow's convert would clip it to white), transparency composited
    onto white (as a viewer shows it), CMYK, palette and greyscale converted."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        wide = np.asarray(img, dtype=np.uint32)
        eight = np.minimum(wide >> 8, 255) if wide.max() > 255 else wide  # 16-bit samples: keep the high byte
        return Image.fromarray(eight.astype(np.uint8), "L").convert("RGB")
    if img.mode == "F":
        return Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def read_rgb(path: Path) -> Image.Image:
    """The photo as 8-bit RGB, rotated upright by its EXIF orientation (phones store photos sideways); decoded once
    and transposed and converted in place where it can be, so a 50-MP photo is held once, not three times."""
    try:
        with Image.open(path) as img:
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
            return to_rgb(img)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from exc


def unreadable_images(folder: Path, names: Sequence[str], known_good: Callable[[str], bool]) -> list[tuple[str, str]]:
    """The images Pillow cannot fully decode, each with the reason; those whose content hash known_good accepts
    (an aligned face is cached) are not decoded again."""
    bad = []
    for name in names:
        try:
            if not known_good(image_sha256(folder / name)):
                read_rgb(folder / name)
        except ImageError as exc:
            bad.append((name, str(exc.__cause__ or exc)))
    return bad
