"""Photos drawn with Pillow, a folder of identities in every format Pillow reads, and tiny LFW copies in the
official layout: small generated data for the dataset code."""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112
ROTATE_90_CW = 6  # "rotate 90 CW to display": how phones store a photo taken in portrait
SIZE = (250, 250)  # LFW's image size


def photo(identity: str, number: int, size: tuple[int, int] = SIZE) -> Image.Image:
    """A smooth, textured RGB picture, the same for the same identity and number and different otherwise: an 8x8
    grid of random colours upsampled bicubically, so that JPEG keeps it closely and no rotation maps it onto itself."""
    rng = np.random.default_rng(zlib.crc32(f"{identity}/{number}".encode()))
    grid = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "RGB")
    return grid.resize(size, Image.Resampling.BICUBIC)


def truncated_jpeg(image: Image.Image, keep: int = 600) -> bytes:
    """The first bytes of the image saved as a JPEG: a file that opens but cannot be decoded."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()[:keep]


def people_tree(root: Path, source: Callable[[str, int], Image.Image] = photo) -> Path:
    """Five identities of source(identity, number) pictures, in every format Pillow reads, one truncated JPEG and
    two stray entries:

    - Alice: plain.jpg, grey.png (8-bit greyscale), alpha.png (RGBA, a transparent 20x20 corner), phone.jpg (stored
      rotated, with EXIF orientation 6 saying how to show it upright);
    - Bob: a.jpg, b.gif (palette), sixteen.png (16-bit greyscale), print.jpg (CMYK);
    - Carol, Erin: one JPEG each (impostor pairs only); Dave: a.jpg, b.jpg and broken.jpg (truncated);
    - README.txt beside the identity folders and Alice/notes.txt, which are not images.
    """
    for person in ("Alice", "Bob", "Carol", "Dave", "Erin"):
        (root / person).mkdir(parents=True)
    source("Alice", 1).save(root / "Alice" / "plain.jpg", quality=95)
    source("Alice", 2).convert("L").save(root / "Alice" / "grey.png")
    rgba = source("Alice", 3).convert("RGBA")
    rgba.paste((0, 0, 0, 0), (0, 0, 20, 20))  # a transparent corner
    rgba.save(root / "Alice" / "alpha.png")
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CW
    source("Alice", 4).transpose(Image.Transpose.ROTATE_90).save(root / "Alice" / "phone.jpg", quality=95, exif=exif)
    source("Bob", 1).save(root / "Bob" / "a.jpg")
    source("Bob", 2).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "Bob" / "b.gif")
    wide = (np.asarray(source("Bob", 3).convert("L"), np.uint16) * 257).astype(np.uint16)
    Image.fromarray(wide).save(root / "Bob" / "sixteen.png")
    source("Bob", 4).convert("CMYK").save(root / "Bob" / "print.jpg")
    source("Carol", 1).save(root / "Carol" / "only.jpg")
    source("Dave", 1).save(root / "Dave" / "a.jpg")
    source("Dave", 2).save(root / "Dave" / "b.jpg")
    (root / "Dave" / "broken.jpg").write_bytes(truncated_jpeg(source("Bob", 5)))
    source("Erin", 1).save(root / "Erin" / "only.jpg")
    (root / "README.txt").write_text("stray file beside the identity folders")
    (root / "Alice" / "notes.txt").write_text("not an image")
    return root


def write_pairs(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def make_lfw(
    root: Path,
    names: tuple[str, ...] = ("A", "B", "C"),
    images: str = "lfw",
    per_identity: int = 2,
    pairs: str = "1\t1\nA\t1\t2\nB\t1\tC\t2\n",
) -> Path:
    """A tiny LFW in the official layout: per_identity JPEGs <name>/<name>_000i.jpg per name, and a pairs.txt."""
    for name in names:
        (root / images / name).mkdir(parents=True)
        for i in range(1, per_identity + 1):
            photo(name, i, (32, 32)).save(root / images / name / f"{name}_{i:04d}.jpg")
    write_pairs(root / "pairs.txt", pairs)
    return root


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes (x1, y1, x2, y2)."""
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    return float(inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter))
