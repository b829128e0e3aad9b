"""MTCNN face alignment with a per-image on-disk cache, so detection runs once per image and setting."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from facequant.cache import atomic_path, key_of
from facequant.config import AlignConfig

log = logging.getLogger(__name__)


class ImageError(RuntimeError):
    """An image file cannot be read."""


@dataclass(frozen=True)
class Aligned:
    faces: np.ndarray  # (N, H, W, 3) uint8 RGB
    detected: np.ndarray  # (N,) bool; False where the centre-crop fallback was used
    computed: int  # how many faces this call had to detect (0 = all from cache)

    @property
    def fallbacks(self) -> int:
        return int((~self.detected).sum())


def cache_dir_for(cache_root: Path, fingerprint: str, cfg: AlignConfig) -> Path:
    """Cache folder keyed by dataset fingerprint and every setting that changes the crop."""
    settings = {k: v for k, v in asdict(cfg).items() if k != "batch_size"}
    return cache_root / "aligned" / key_of(fingerprint, settings)


def read_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from exc


def _mtcnn(cfg: AlignConfig):
    from facenet_pytorch import MTCNN

    return MTCNN(
        image_size=cfg.image_size,
        margin=cfg.margin,
        min_face_size=cfg.min_face_size,
        thresholds=list(cfg.thresholds),
        factor=cfg.factor,
        post_process=False,
        selection_method=cfg.selection_method,
    )


def _fallback_box(img: Image.Image, fraction: float) -> np.ndarray:
    side = fraction * min(img.size)
    cx, cy = img.width / 2, img.height / 2
    return np.array([[cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]])


def _align_batch(mtcnn, images: list[Image.Image], cfg: AlignConfig) -> list[tuple[np.ndarray, bool]]:
    """Detect in one batch, then select and crop image by image.

    facenet-pytorch's batched select_boxes builds a ragged array and raises on numpy 2 when an image in
    the batch has no face, so selection and extraction run per image.
    """
    same_size = len({im.size for im in images}) == 1
    if same_size:
        boxes, probs, points = mtcnn.detect(images, landmarks=True)
    else:
        boxes, probs, points = zip(*(mtcnn.detect(im, landmarks=True) for im in images), strict=True)
    out = []
    for img, b, p, pts in zip(images, boxes, probs, points, strict=True):
        box = None
        if b is not None:
            box, _, _ = mtcnn.select_boxes(b, p, pts, img, method=cfg.selection_method)
        detected = box is not None
        if not detected:
            box = _fallback_box(img, cfg.fallback_box)
        face = mtcnn.extract(img, box, None)
        out.append((face.permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy(), detected))
    return out


def _store(path: Path, face: np.ndarray, detected: bool) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, face=face, detected=np.array(detected))


def ensure_aligned(images_dir: Path, names: list[str], cfg: AlignConfig, cache: Path) -> int:
    """Detect and cache the faces of images not yet in the cache folder; returns how many it aligned."""
    files = [cache / f"{name}.npz" for name in names]
    todo = [i for i, f in enumerate(files) if not f.is_file()]
    if todo:
        mtcnn = _mtcnn(cfg)
        log.info("aligning %d of %d images with MTCNN (cache: %s)", len(todo), len(names), cache)
        with tqdm(total=len(todo), desc="MTCNN alignment", unit="img") as bar:
            for start in range(0, len(todo), cfg.batch_size):
                chunk = todo[start : start + cfg.batch_size]
                images = [read_rgb(images_dir / names[i]) for i in chunk]
                with torch.inference_mode():
                    results = _align_batch(mtcnn, images, cfg)
                for i, (face, detected) in zip(chunk, results, strict=True):
                    _store(files[i], face, detected)
                bar.update(len(chunk))
    return len(todo)


def align_images(images_dir: Path, names: list[str], cfg: AlignConfig, cache: Path) -> Aligned:
    """Aligned uint8 faces for images_dir/name, detecting only those not in the cache folder."""
    computed = ensure_aligned(images_dir, names, cfg, cache)
    faces = np.empty((len(names), cfg.image_size, cfg.image_size, 3), np.uint8)
    detected = np.empty(len(names), bool)
    for i, name in enumerate(names):
        with np.load(cache / f"{name}.npz") as entry:
            faces[i], detected[i] = entry["face"], entry["detected"]
    result = Aligned(faces, detected, computed)
    if result.fallbacks:
        log.warning("MTCNN found no face in %d of %d images; used a centre crop", result.fallbacks, len(names))
    return result
