"""The evaluated dataset (LFW, or a folder of identities): its pairs or every image against every other, and the
held-out calibration pool."""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from facequant.cache.files import key_of
from facequant.config.sections import DatasetConfig
from facequant.config.settings import default_lfw_root
from facequant.data.download import SIZE, fetch_lfw
from facequant.data.links import link_out

log = logging.getLogger(__name__)

IMAGE_DIRS = ("lfw-deepfunneled", "lfw_funneled", "lfw")


class DatasetError(RuntimeError):
    """The dataset is missing, malformed or incomplete."""


@dataclass(frozen=True)
class Pair:
    fold: int
    label: int  # 1 genuine, 0 impostor
    left: str  # path relative to the images folder
    right: str


@dataclass(frozen=True)
class Dataset:
    """Images as '<identity>/<file>' relative to images_dir, sorted so an identity's images are adjacent, and the
    pairs of a pairs file (None under protocol=all of a folder)."""

    name: str
    images_dir: Path
    pairs_path: Path | None
    pairs: tuple[Pair, ...]
    images: tuple[str, ...]
    fingerprint: str
    unreadable: tuple[str, ...] = ()  # skipped under dataset.skip_unreadable=true

    @property
    def image_count(self) -> int:
        return len(self.images)

    @property
    def source(self) -> Path:
        """What a run's dataset input points at: the pairs file, else the images folder."""
        return self.pairs_path or self.images_dir

    def evaluated(self, folds: int) -> tuple[Pair, ...]:
        return tuple(p for p in self.pairs if p.fold < folds)

    def without(self, skipped: list[str]) -> Dataset:
        """The dataset without these images and the pairs that use them."""
        gone = set(skipped)
        pairs = tuple(p for p in self.pairs if p.left not in gone and p.right not in gone)
        images = tuple(i for i in self.images if i not in gone)
        return replace(self, pairs=pairs, images=images, unreadable=tuple(sorted(gone)))


def image_name(person: str, index: str, line_no: int, path: Path) -> str:
    """The image path of a pairs.txt entry; the name must be one plain path component, so no pair reads
    an image outside the images folder."""
    if person in ("", ".", "..") or any(c in person for c in "/\\\0"):
        raise DatasetError(
            f"{path}:{line_no}: name {person!r} is not a plain folder name (no '/', '\\' or '..'); fix the pairs file"
        )
    try:
        number = int(index)
    except ValueError:
        raise DatasetError(f"{path}:{line_no}: image number {index!r} is not an integer") from None
    return f"{person}/{person}_{number:04d}.jpg"


def parse_pairs(path: Path) -> tuple[Pair, ...]:
    """Parse an LFW View 2 pairs file: a 'folds n' header, then per fold n genuine and n impostor lines."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()  # a BOM (as Windows editors save) is not the header
    if not lines:
        raise DatasetError(f"{path}: empty pairs file; expected a header line like '10\\t300'")
    header = lines[0].split()
    if len(header) != 2 or not all(h.isdigit() for h in header):
        raise DatasetError(f"{path}:1: header {lines[0]!r} must be '<folds> <pairs per class>', e.g. '10\\t300'")
    folds, per_class = int(header[0]), int(header[1])
    body = [(no, line.split()) for no, line in enumerate(lines[1:], start=2) if line.strip()]
    expected = folds * 2 * per_class
    if len(body) != expected:
        raise DatasetError(
            f"{path}: header promises {folds} folds x 2 x {per_class} = {expected} pairs, found {len(body)} lines"
        )
    pairs = []
    for k, (no, parts) in enumerate(body):
        fold, within = divmod(k, 2 * per_class)
        genuine = within < per_class
        if genuine and len(parts) == 3:
            left, right = (parts[0], parts[1]), (parts[0], parts[2])
        elif not genuine and len(parts) == 4:
            left, right = (parts[0], parts[1]), (parts[2], parts[3])
        else:
            kind = "genuine 'name i j'" if genuine else "impostor 'name1 i name2 j'"
            raise DatasetError(f"{path}:{no}: expected a {kind} line, got {' '.join(parts)!r}")
        pairs.append(Pair(fold, int(genuine), image_name(*left, no, path), image_name(*right, no, path)))
    return tuple(pairs)


def _find_layout(root: Path, cfg: DatasetConfig) -> tuple[Path, Path] | None:
    """Return (pairs file, images folder) under root or under scikit-learn's lfw_home, if present."""
    for base in (root, root / "lfw_home"):
        pairs = base / cfg.pairs
        if not pairs.is_file():
            continue
        if cfg.images:
            images = base / cfg.images
            return (pairs, images) if images.is_dir() else None
        for name in IMAGE_DIRS:
            if (base / name).is_dir():
                return pairs, base / name
    return None


def may_download(cfg: DatasetConfig, root: Path) -> bool:
    """dataset.download=auto downloads into the default root only, so a mistyped root is never filled; true
    downloads into any root."""
    return cfg.download is True or (cfg.download == "auto" and root == default_lfw_root())


def load_lfw(cfg: DatasetConfig) -> Dataset:
    """Locate, download where allowed, parse and check LFW; every pair image must exist."""
    root = Path(cfg.root).expanduser()
    layout = _find_layout(root, cfg)
    if layout is None and may_download(cfg, root):
        try:
            fetch_lfw(root)
        except OSError as exc:  # offline, a damaged download, a folder in the way
            raise DatasetError(
                f"LFW is not under {root}, and downloading it there failed ({exc}). Either give a local copy: "
                f"dataset.root=<the folder that holds {cfg.pairs} and one of {', '.join(IMAGE_DIRS)}>; or run once "
                f"on a machine with internet, which downloads LFW ({SIZE}) into {root}."
            ) from exc
        layout = _find_layout(root, cfg)
    if layout is None:
        raise DatasetError(
            f"LFW not found: {root} has no {cfg.pairs} beside an images folder "
            f"({cfg.images or ' / '.join(IMAGE_DIRS)}). Set dataset.root to the folder that holds them. "
            + (
                "dataset.download=false: set it to true to download LFW there."
                if cfg.download is False
                else f"LFW is downloaded only into the default root ({default_lfw_root()}, when dataset.root is not "
                "given), or into any root with dataset.download=true."
            )
        )
    pairs_path, images_dir = layout
    pairs = parse_pairs(pairs_path)
    available = 1 + max(p.fold for p in pairs)
    if cfg.folds > available:
        raise DatasetError(f"dataset.folds={cfg.folds} but {pairs_path} has only {available} folds")
    missing = sorted({name for p in pairs for name in (p.left, p.right) if not (images_dir / name).is_file()})
    if missing:
        raise DatasetError(
            f"{len(missing)} image(s) named in {pairs_path} are missing from {images_dir}, e.g. {missing[0]}"
        )
    images = tuple(sorted(os.path.relpath(p, images_dir) for p in images_dir.rglob("*.jpg")))
    used = sorted(set(images).union(*((p.left, p.right) for p in pairs)))
    read = [pairs_path, images_dir, *(os.path.join(images_dir, name) for name in used)]
    if not cfg.follow_symlinks and (refused := link_out(root, read)):
        raise DatasetError(refused)
    digest = hashlib.sha256(normalised_text(pairs_path)).hexdigest()
    return Dataset("lfw", images_dir, pairs_path, pairs, images, f"{digest[:16]}-{len(images)}")


def normalised_text(path: Path) -> bytes:
    """The file's bytes without a UTF-8 BOM and with LF line ends: the same pairs saved by another editor have one
    fingerprint, and the official LF file keeps its own."""
    return path.read_bytes().removeprefix(codecs.BOM_UTF8).replace(b"\r\n", b"\n")


def pairs_digest(pairs: tuple[Pair, ...]) -> str:
    """A key of exactly which pairs are evaluated, in order, with their labels and folds."""
    return key_of([(p.fold, p.label, p.left, p.right) for p in pairs])


def pair_images(pairs: tuple[Pair, ...]) -> list[str]:
    """Distinct images of the given pairs, in order of first use."""
    return list(dict.fromkeys(name for p in pairs for name in (p.left, p.right)))


def identity_of(image: str) -> str:
    """The identity of an '<identity>/<file>' image: its folder."""
    return image.split("/", 1)[0]


def identity_index(images: list[str]) -> np.ndarray:
    """A dense identity number per image, in order of first appearance."""
    return np.unique([identity_of(i) for i in images], return_inverse=True)[1]


@dataclass(frozen=True)
class IdentitySplit:
    """Whole identities held out for calibration; the rest is evaluated, so no face is in both."""

    calibration: list[str]
    evaluation: list[str]


def split_identities(images: Sequence[str], pool: int, seed: int, identities: int | None = None) -> IdentitySplit:
    """Walk the identities in a seeded random order, reserving each one that keeps the reserve within pool images,
    until it holds exactly pool (singletons make that reachable); optionally keep a seeded subset of the rest.

    Never reserving an identity that overshoots keeps large identities, and their genuine pairs, in evaluation.
    """
    by_identity: dict[str, list[str]] = {}
    for image in images:
        by_identity.setdefault(identity_of(image), []).append(image)
    names = sorted(by_identity)
    rng = np.random.default_rng(seed)
    reserved: set[str] = set()
    size = 0
    for i in rng.permutation(len(names)):
        if size == pool:
            break
        if size + len(by_identity[names[i]]) <= pool:
            reserved.add(names[i])
            size += len(by_identity[names[i]])
    if size < pool:
        raise DatasetError(
            f"dataset.calibration_pool={pool} cannot be filled with whole identities ({size} images reserved); "
            "lower dataset.calibration_pool"
        )
    rest = [n for n in names if n not in reserved]
    if identities is not None:
        if identities > len(rest):
            raise DatasetError(
                f"dataset.identities={identities} but only {len(rest)} identities are outside calibration; "
                f"choose dataset.identities<={len(rest)} or null for all"
            )
        rest = sorted(rest[i] for i in rng.choice(len(rest), size=identities, replace=False))
    if len(rest) < 2:
        raise DatasetError(f"{len(rest)} identities left to evaluate; protocol=all needs at least 2")
    kept = set(rest)
    return IdentitySplit(
        [i for i in images if identity_of(i) in reserved], [i for i in images if identity_of(i) in kept]
    )


def unpaired_images(dataset: Dataset) -> list[str]:
    """The images that no pair of the pairs protocol uses: the default pool of held-out faces."""
    used = set(pair_images(dataset.pairs))
    return [image for image in dataset.images if image not in used]


def _draw(pool: list[str], count: int, seed: int) -> list[str]:
    picked = np.random.default_rng(seed).choice(len(pool), size=count, replace=False)
    return [pool[i] for i in sorted(picked)]


def calibration_images(dataset: Dataset, num_samples: int, seed: int, pool: list[str] | None = None) -> list[str]:
    """Draw calibration images, with a seed, from the pool: by default the images that no pair of the pairs
    protocol uses."""
    pool = unpaired_images(dataset) if pool is None else pool
    if num_samples > len(pool):
        raise DatasetError(
            f"calibration.num_samples={num_samples} but only {len(pool)} held-out images are in the calibration "
            f"pool; choose calibration.num_samples<={len(pool)} (or, for protocol=all, raise dataset.calibration_pool)"
        )
    return _draw(pool, num_samples, seed)


def held_out_images(
    dataset: Dataset, count: int, seed: int, calibration: list[str], pool: list[str] | None = None
) -> list[str]:
    """Draw images the same seeded way from the calibration pool (as calibration_images) minus the calibration
    images: disjoint from them and from every evaluated image."""
    taken = set(calibration)
    rest = [name for name in (unpaired_images(dataset) if pool is None else pool) if name not in taken]
    if count > len(rest):
        raise DatasetError(
            f"sensitivity_faces={count} but only {len(rest)} held-out images are in the calibration pool outside the "
            f"calibration set; choose sensitivity_faces<={len(rest)}"
        )
    return _draw(rest, count, seed)
