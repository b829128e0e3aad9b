"""MTCNN face alignment with a per-image cache keyed by image content, so detection runs once per image. torch and
facenet-pytorch are imported only to detect: a job whose faces are cached reads them without."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from facequant.cache.files import exclusive, load_npz, save_npz
from facequant.cache.layout import CacheLayout, FaceSetIdentity
from facequant.config.sections import AlignConfig
from facequant.data.images import ImageError, image_sha256, read_rgb
from facequant.machine import usable_cpus

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


# One image's faces as facenet-pytorch's MTCNN.detect gives them: boxes (N, 4), probabilities (N,), landmarks
# (N, 5, 2), largest box first; all None when no face is found.
Detection = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]
NO_FACE: Detection = (None, None, None)


class Detector:
    """MTCNN with facenet-pytorch's weights, run by data/mtcnn.py (nets on openvino or onnxruntime) or by
    facenet-pytorch (reference).

    data/mtcnn.py aligns `workers` batches at once, each on one runtime thread: MTCNN's small convolutions and its
    Python steps between them keep two threads of one batch mostly idle."""

    def __init__(self, cfg: AlignConfig) -> None:
        from facenet_pytorch import MTCNN

        from facequant.data.mtcnn import onnx_net, openvino_net

        self.cfg = cfg
        reference = cfg.implementation == "reference"
        self.workers = cfg.workers or (1 if reference else usable_cpus())
        self.one_large_photo = threading.Lock()  # photos above detect_max_side are aligned one at a time
        self.mtcnn = MTCNN(
            image_size=cfg.image_size,
            margin=cfg.margin,
            min_face_size=cfg.min_face_size,
            thresholds=list(cfg.thresholds),
            factor=cfg.factor,
            post_process=False,
            selection_method=cfg.selection_method,
        )
        if not reference:
            threads = max(1, usable_cpus() // self.workers)
            sizes = ((self.mtcnn.pnet, None), (self.mtcnn.rnet, 24), (self.mtcnn.onet, 48))
            if cfg.implementation == "openvino":
                self.nets = tuple(openvino_net(net, size, threads, self.workers) for net, size in sizes)
            else:
                self.nets = tuple(onnx_net(net, size, threads) for net, size in sizes)

    def detect(self, images: list[Image.Image]) -> list[Detection]:
        """Every face in each image; images of one size are detected as one batch."""
        out: list[Detection] = [NO_FACE] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault(img.size, []).append(i)
        for indices in groups.values():
            for i, found in zip(indices, self._detect_same_size([images[i] for i in indices]), strict=True):
                out[i] = found
        return out

    def _detect_same_size(self, images: list[Image.Image]) -> list[Detection]:
        if self.cfg.implementation == "reference":
            return list(zip(*self.mtcnn.detect(images, landmarks=True), strict=True))
        batch = np.stack([np.asarray(img) for img in images])
        from facequant.data.mtcnn import detect_faces

        found = detect_faces(batch, *self.nets, self.cfg.min_face_size, self.cfg.thresholds, self.cfg.factor)
        return [_largest_first(boxes, points) for boxes, points in found]

    def select(self, img: Image.Image, found: Detection) -> np.ndarray | None:
        """The box (1, 4) that selection_method picks among the faces found, or None."""
        boxes, probs, points = found
        if boxes is None:
            return None
        return self.mtcnn.select_boxes(boxes, probs, points, img, method=self.cfg.selection_method)[0]

    def align(self, img: Image.Image, found: Detection) -> tuple[np.ndarray, bool]:
        """The selected face's crop (uint8 HWC) and whether a face was found; else the centre crop."""
        box = self.select(img, found)
        detected = box is not None
        if box is None:
            box = _fallback_box(img, self.cfg.fallback_box)
        return crop_face(img, box[0], self.cfg.image_size, self.cfg.margin), detected


def crop_face(img: Image.Image, box: np.ndarray, size: int, margin: int) -> np.ndarray:
    """facenet-pytorch's extract_face as uint8 HWC, pixel for pixel, without its float tensor: that copy runs on
    PyTorch's thread pool, which each aligner worker would otherwise wake for one 160x160 face."""
    from facenet_pytorch.models.utils.detect_face import crop_resize

    mx, my = margin * (box[2] - box[0]) / (size - margin), margin * (box[3] - box[1]) / (size - margin)
    width, height = img.size
    area = (
        int(max(box[0] - mx / 2, 0)),
        int(max(box[1] - my / 2, 0)),
        int(min(box[2] + mx / 2, width)),
        int(min(box[3] + my / 2, height)),
    )
    return np.asarray(crop_resize(img, area, size))


@cache
def detector_for(cfg: AlignConfig) -> Detector:
    """One detector per setting and process: exporting the three nets to ONNX takes about a second, which
    facequant.deploy would otherwise pay on every verification."""
    return Detector(cfg)


def _largest_first(boxes: np.ndarray, points: np.ndarray) -> Detection:
    """The order and shapes facenet-pytorch's MTCNN.detect gives (select_largest=True), so selection ties agree."""
    if len(boxes) == 0:
        return NO_FACE
    order = np.argsort((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[::-1]
    return boxes[order, :4], boxes[order, 4], points[order]


def _fallback_box(img: Image.Image, fraction: float) -> np.ndarray:
    side = fraction * min(img.size)
    cx, cy = img.width / 2, img.height / 2
    return np.array([[cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]])


def detect_large(detector: Detector, img: Image.Image) -> Detection:
    """The faces of a photo larger than detect_max_side, found on a copy downscaled to that side and mapped back to
    the photo's pixels: MTCNN's pyramid on a 50-MP photo would take gigabytes."""
    scale = detector.cfg.detect_max_side / max(img.size)
    small = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BOX)
    boxes, probs, points = detector.detect([small])[0]
    if boxes is None:
        return NO_FACE
    sx, sy = img.width / small.width, img.height / small.height
    return boxes * np.array([sx, sy, sx, sy], np.float32), probs, points * np.array([sx, sy], np.float32)


def _is_large(path: Path, max_side: int) -> bool:
    """Whether the photo's header gives a side above max_side; unreadable files are left for read_rgb to name."""
    try:
        with Image.open(path) as img:
            return max(img.size) > max_side
    except Exception:
        return False


def _align_batch(detector: Detector, paths: list[Path]) -> list[tuple[np.ndarray, bool]]:
    """Read, detect and crop; a photo above detect_max_side is read and aligned under the detector's lock, so at
    most one full-size photo is in memory at a time, whatever the workers."""
    out: dict[int, tuple[np.ndarray, bool]] = {}
    pending: list[tuple[int, Image.Image]] = []
    for i, path in enumerate(paths):
        if _is_large(path, detector.cfg.detect_max_side):
            with detector.one_large_photo:
                img = read_rgb(path)
                out[i] = detector.align(img, detect_large(detector, img))
                del img
        else:
            pending.append((i, read_rgb(path)))
    found = detector.detect([img for _, img in pending])
    for (i, img), faces in zip(pending, found, strict=True):
        out[i] = detector.align(img, faces)
    return [out[i] for i in range(len(paths))]


def align_files(detector: Detector, paths: list[Path]) -> Iterator[tuple[np.ndarray, bool]]:
    """Each photo's face crop and whether a face was found, in order; batches of align.batch_size are read and
    aligned by the detector's workers side by side."""

    import torch

    def batch(chunk: list[Path]) -> list[tuple[np.ndarray, bool]]:
        with torch.inference_mode():
            return _align_batch(detector, chunk)

    size = detector.cfg.batch_size
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
    if detector.workers == 1:  # in this thread: PyTorch's (reference) thread pool belongs to it
        for chunk in chunks:
            yield from batch(chunk)
        return
    with ThreadPoolExecutor(detector.workers, thread_name_prefix="align") as pool:
        for results in pool.map(batch, chunks):
            yield from results


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
        detector = detector_for(cfg)
        where = files[todo[0]].parent.parent
        log.info(
            "aligning %d of %d images with MTCNN, %s (cache: %s)", len(todo), len(names), cfg.implementation, where
        )
        aligned = align_files(detector, [images_dir / names[i] for i in todo])
        for i, (face, detected) in tqdm(
            zip(todo, aligned, strict=True), total=len(todo), desc="MTCNN alignment", unit="img"
        ):
            save_npz(files[i], face=face, detected=np.array(detected))
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
