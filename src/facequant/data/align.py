"""MTCNN face alignment with a per-image cache keyed by image content, so detection runs once per image."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from facequant.cache.files import exclusive, load_npz, save_npz
from facequant.cache.layout import CacheLayout, FaceSetIdentity
from facequant.config.sections import AlignConfig
from facequant.data.images import ImageError, image_sha256, read_rgb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Aligned:
    faces: np.ndarray  # (N, H, W, 3) uint8 RGB
    detected: np.ndarray  # (N,) bool; False where the centre-crop fallback was used
    computed: int  # how many faces this call had to detect (0 = all from cache)

    @property
    def fallbacks(self) -> int:
        return int((~self.detected).sum())


def face_set(images_dir: Path, names: list[str], cfg: AlignConfig) -> FaceSetIdentity:
    """The identity of these images' aligned faces: their content hashes and the crop settings."""
    return FaceSetIdentity(tuple(image_sha256(images_dir / n) for n in names), cfg.crop_settings())


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


def _entries(faces: FaceSetIdentity, layout: CacheLayout) -> list[Path]:
    return [layout.aligned(faces.crop, sha) for sha in faces.image_sha256]


def ensure_aligned(
    images_dir: Path, names: list[str], faces: FaceSetIdentity, cfg: AlignConfig, layout: CacheLayout
) -> int:
    """Detect and cache the faces of images not yet in the cache; returns how many it aligned. Under the crop
    setting's lock: jobs sharing cache_dir never align the same image twice."""
    if all(path.is_file() for path in _entries(faces, layout)):  # entries are written atomically: no lock needed
        return 0
    with exclusive(layout.aligned_set(faces.crop)):
        return _align_missing(images_dir, names, faces, cfg, layout)


def _align_missing(
    images_dir: Path, names: list[str], faces: FaceSetIdentity, cfg: AlignConfig, layout: CacheLayout
) -> int:
    files = _entries(faces, layout)
    todo = list({f: i for i, f in enumerate(files) if not f.is_file()}.values())  # one per distinct content
    if todo:
        mtcnn = _mtcnn(cfg)
        log.info("aligning %d of %d images with MTCNN (cache: %s)", len(todo), len(names), files[todo[0]].parent.parent)
        with tqdm(total=len(todo), desc="MTCNN alignment", unit="img") as bar:
            for start in range(0, len(todo), cfg.batch_size):
                chunk = todo[start : start + cfg.batch_size]
                images = [read_rgb(images_dir / names[i]) for i in chunk]
                with torch.inference_mode():
                    results = _align_batch(mtcnn, images, cfg)
                for i, (face, detected) in zip(chunk, results, strict=True):
                    save_npz(files[i], face=face, detected=np.array(detected))
                bar.update(len(chunk))
    return len(todo)


def _load(files: list[Path], indices, faces: np.ndarray, detected: np.ndarray) -> list[int]:
    """Fill faces/detected from the cache entries at indices; returns the indices whose entry was damaged."""
    damaged = []
    for i in indices:
        entry = load_npz(files[i], ("face", "detected"))
        if entry is None:
            damaged.append(i)
        else:
            faces[i], detected[i] = entry["face"], entry["detected"]
    return damaged


def load_aligned(
    images_dir: Path, names: list[str], faces: FaceSetIdentity, cfg: AlignConfig, layout: CacheLayout
) -> Aligned:
    """Aligned uint8 faces of the images; entries that are missing or damaged are aligned (again)."""
    computed = ensure_aligned(images_dir, names, faces, cfg, layout)
    files = _entries(faces, layout)
    out = np.empty((len(names), cfg.image_size, cfg.image_size, 3), np.uint8)
    detected = np.empty(len(names), bool)
    damaged = _load(files, range(len(files)), out, detected)
    if damaged:  # load_npz removed them: align those images again
        computed += ensure_aligned(images_dir, names, faces, cfg, layout)
        damaged = _load(files, damaged, out, detected)
    if damaged:
        raise ImageError(f"aligned faces of {len(damaged)} image(s) could not be cached, e.g. {names[damaged[0]]}")
    result = Aligned(out, detected, computed)
    if result.fallbacks:
        log.warning("MTCNN found no face in %d of %d images; used a centre crop", result.fallbacks, len(names))
    return result


def align_images(images_dir: Path, names: list[str], cfg: AlignConfig, layout: CacheLayout) -> Aligned:
    """Aligned faces of images_dir/name, detecting only those whose content is not in the cache."""
    return load_aligned(images_dir, names, face_set(images_dir, names, cfg), cfg, layout)
