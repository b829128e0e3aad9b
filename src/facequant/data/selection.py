"""Which images a job evaluates and calibrates on, with the images Pillow cannot decode found before any work."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from facequant.config.sections import CalibrationConfig, DatasetConfig
from facequant.data.folder import load_folder
from facequant.data.images import unreadable_images
from facequant.data.lfw import (
    Dataset,
    DatasetError,
    Pair,
    calibration_images,
    identity_of,
    load_lfw,
    pair_images,
    split_identities,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    """The evaluated pairs (none under protocol=all) and images, the calibration pool and the calibration draw."""

    dataset: Dataset
    pairs: tuple[Pair, ...]
    names: list[str]
    pool: list[str] | None  # None: the images no pair uses (LFW's pairs protocol)
    calibration: list[str]


def load_dataset(cfg: DatasetConfig) -> Dataset:
    """LFW or the folder of identities, located and checked (LFW downloaded where dataset.download allows)."""
    return load_folder(cfg) if cfg.name == "folder" else load_lfw(cfg)


def select_images(dataset: Dataset, cfg: DatasetConfig, calib: CalibrationConfig | None) -> Selection:
    """The job's evaluated and calibration images; raises DatasetError when the calibration pool is too small.
    Calibration never shares an identity with evaluation, except under LFW's pairs, whose pool is the images no
    pair uses."""
    if cfg.protocol == "all":
        split = split_identities(dataset.images, cfg.calibration_pool, cfg.seed, cfg.identities)
        pairs, names, pool = (), split.evaluation, split.calibration
    else:
        pairs = dataset.evaluated(cfg.folds)
        names, pool = pair_images(pairs), None
        if dataset.name == "folder":
            paired = {identity_of(name) for p in dataset.pairs for name in (p.left, p.right)}
            pool = [image for image in dataset.images if identity_of(image) not in paired]
    drawn = calibration_images(dataset, calib.num_samples, calib.seed, pool) if calib else []
    return Selection(dataset, pairs, names, pool, drawn)


def select(cfg: DatasetConfig, calib: CalibrationConfig | None, is_aligned: Callable[[str], bool]) -> Selection:
    """Load LFW or the folder and select this job's images. Images Pillow cannot decode are named in an error, or
    under dataset.skip_unreadable left out (and the selection drawn again without them); an image whose content
    hash is_aligned accepts has its face cached and is not decoded again."""
    dataset = load_dataset(cfg)
    while True:
        selection = select_images(dataset, cfg, calib)
        used = list(dict.fromkeys([*selection.names, *selection.calibration]))
        bad = unreadable_images(dataset.images_dir, used, is_aligned)
        if not bad:
            return selection
        listed = "; ".join(f"{name} ({reason})" for name, reason in bad[:10]) + ("; ..." if len(bad) > 10 else "")
        if not cfg.skip_unreadable:
            raise DatasetError(
                f"{len(bad)} image(s) under {dataset.images_dir} cannot be decoded: {listed}. Replace or remove them, "
                "or set dataset.skip_unreadable=true to leave them out (counted as n_unreadable)"
            )
        log.warning("leaving out %d undecodable image(s) (dataset.skip_unreadable=true): %s", len(bad), listed)
        dataset = dataset.without([*dataset.unreadable, *(name for name, _ in bad)])
