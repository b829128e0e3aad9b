"""dataset=folder: the user's photos as <root>/<identity>/<image>, every image against every other or a pairs CSV."""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

import pandas as pd

from facequant.cache.files import key_of
from facequant.config.sections import DatasetConfig
from facequant.data.images import IMAGE_SUFFIXES, ImageError, image_sha256
from facequant.data.lfw import Dataset, DatasetError, Pair, identity_of, pairs_digest
from facequant.data.links import link_out

log = logging.getLogger(__name__)

PAIRS_COLUMNS = ("left", "right", "label")


def list_images(root: Path) -> tuple[str, ...]:
    """Every image one level inside an identity folder, as '<identity>/<file>', sorted; hidden entries, files beside
    the identity folders and deeper folders are not part of the layout and are ignored with a warning."""
    images, ignored = [], []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            ignored.append(entry.name)
            continue
        for item in sorted(entry.iterdir()):
            if item.name.startswith("."):
                continue
            if item.is_file() and item.suffix.lower() in IMAGE_SUFFIXES:
                images.append(f"{entry.name}/{item.name}")
            else:
                ignored.append(f"{entry.name}/{item.name}")
    if ignored:
        log.warning(
            "%d entries under %s are not <identity>/<image> files and are ignored, e.g. %s",
            len(ignored),
            root,
            ignored[0],
        )
    return tuple(images)


def _image_path(value: object, row: int, path: Path) -> str:
    """A pairs-file path as '<identity>/<file>'; it must not leave the root."""
    name = str(value).strip().replace("\\", "/")
    parts = PurePosixPath(name).parts
    if len(parts) != 2 or name.startswith("/") or ".." in parts:
        raise DatasetError(
            f"{path}: row {row}: {value!r} is not '<identity>/<image>' relative to dataset.root; fix the pairs file"
        )
    return "/".join(parts)


def parse_pairs_csv(path: Path, images: tuple[str, ...]) -> tuple[Pair, ...]:
    """Read a CSV of left,right,label[,fold]; labels are 1 (same person) or 0, folds any integers (made dense), and
    every image must be one the folder holds."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        message = f"{path}: cannot read the pairs CSV ({exc}); it needs a header left,right,label[,fold]"
        raise DatasetError(message) from exc
    missing = [c for c in PAIRS_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"{path}: columns {', '.join(missing)} are missing (found {', '.join(frame.columns)}); "
            "the header must be left,right,label[,fold]"
        )
    if frame.empty:
        raise DatasetError(f"{path}: no pairs below the header")
    bad_labels = frame.index[~frame["label"].str.strip().isin(["0", "1"])]
    if len(bad_labels):
        row = bad_labels[0]
        raise DatasetError(f"{path}: row {row + 2}: label {frame['label'][row]!r} must be 1 (same person) or 0")
    folds = pd.Series(0, index=frame.index)
    if "fold" in frame.columns:
        numeric = pd.to_numeric(frame["fold"], errors="coerce")
        if numeric.isna().any() or (numeric % 1 != 0).any():
            row = int(frame.index[numeric.isna() | (numeric % 1 != 0)][0])
            raise DatasetError(f"{path}: row {row + 2}: fold {frame['fold'][row]!r} is not an integer")
        folds = numeric.rank(method="dense").astype(int) - 1
    known = set(images)
    columns = zip(frame["left"], frame["right"], frame["label"], folds, strict=True)
    pairs = [
        Pair(int(fold), int(label), _image_path(left, row, path), _image_path(right, row, path))
        for row, (left, right, label, fold) in enumerate(columns, start=2)
    ]
    absent = sorted({name for p in pairs for name in (p.left, p.right)} - known)
    if absent:
        raise DatasetError(
            f"{path}: {len(absent)} image(s) it names are not images under dataset.root, e.g. {absent[0]}; "
            "paths are '<identity>/<image>' relative to dataset.root"
        )
    if len({p.label for p in pairs}) < 2:
        raise DatasetError(f"{path}: every pair has label {pairs[0].label}; verification needs both 1 and 0")
    return tuple(pairs)


def _contents(root: Path, images: tuple[str, ...]) -> list[tuple[str, str]]:
    """Each image's name and content hash (hashed once per process), so an edited photo changes the fingerprint."""
    out = []
    for name in images:
        try:
            out.append((name, image_sha256(root / name)))
        except ImageError:
            out.append((name, "unreadable"))  # named, or skipped, when the job selects its images
    return out


def load_folder(cfg: DatasetConfig) -> Dataset:
    """The images of a folder of identities, and the pairs of dataset.pairs (a CSV, relative to the root) if set."""
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset.root={cfg.root}: no such folder; point it at a folder of <identity>/<image> files")
    images = list_images(root)
    paths = [root / name for name in images]
    if cfg.pairs:
        paths.append(root / cfg.pairs)
    if not cfg.follow_symlinks and (refused := link_out(root, paths)):
        raise DatasetError(refused)
    identities = {identity_of(name) for name in images}
    if len(identities) < 2:
        raise DatasetError(
            f"{root} holds images of {len(identities)} identit{'y' if len(identities) == 1 else 'ies'}; "
            "verification needs at least 2 folders of <identity>/<image> files"
        )
    pairs_path, pairs, pairs_key = None, (), ""
    if cfg.pairs:
        pairs_path = root / cfg.pairs
        if not pairs_path.is_file():
            raise DatasetError(f"dataset.pairs={cfg.pairs}: {pairs_path} is not a file; give a CSV relative to root")
        pairs = parse_pairs_csv(pairs_path, images)
        available = 1 + max(p.fold for p in pairs)
        if 1 < available < cfg.folds:
            raise DatasetError(
                f"dataset.folds={cfg.folds} but {pairs_path} has {available} folds; set dataset.folds<={available}"
            )
        counts = [sum(p.label == label for p in pairs if p.fold < cfg.folds) for label in (1, 0)]
        if available == 1 and min(counts) < 10:
            raise DatasetError(
                f"{pairs_path}: {counts[0]} genuine and {counts[1]} impostor pairs in one fold; its 10-fold accuracy "
                "needs at least 10 of each: add pairs, or give a fold column"
            )
        pairs_key = pairs_digest(pairs)  # the parsed rows: a BOM, CRLF, quoting or ./ prefixes change nothing
    fingerprint = f"{key_of([_contents(root, images), pairs_key])[:16]}-{len(images)}"
    return Dataset("folder", root, pairs_path, pairs, images, fingerprint)
