"""Validation pairs for quant.exclude=auto: genuine and impostor pairs drawn from identities outside calibration
and outside every test pair, so that the search never reads a test figure."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from facequant.config.running import ExclusionConfig
from facequant.data.lfw import Dataset, DatasetError, Pair, identity_of, unpaired_images

FOLDS = 10  # the 10-fold accuracy of the test protocol, on the validation pairs too


def validation_images(
    dataset: Dataset, pool: Sequence[str] | None, calibration: Sequence[str], held_out: Sequence[str]
) -> list[str]:
    """The calibration pool (which no evaluated pair uses; None: LFW's unpaired images) minus the calibration faces'
    identities and the held-out sensitivity faces."""
    pool = unpaired_images(dataset) if pool is None else pool
    calibrated = {identity_of(name) for name in calibration}
    taken = set(held_out)
    return [name for name in pool if identity_of(name) not in calibrated and name not in taken]


def _by_identity(images: Sequence[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for image in images:
        groups.setdefault(identity_of(image), []).append(image)
    return groups


def genuine_pairs(images: Sequence[str], count: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """count same-identity pairs, one per identity per round in a shuffled order, so that identities with hundreds
    of images do not fill the set."""
    queues = []
    for members in _by_identity(images).values():
        pairs = list(itertools.combinations(members, 2))
        queues.append([pairs[i] for i in rng.permutation(len(pairs))])
    queues = [queues[i] for i in rng.permutation(len(queues)) if queues[i]]
    drawn: list[tuple[str, str]] = []
    for depth in range(max((len(q) for q in queues), default=0)):
        drawn += [queue[depth] for queue in queues if depth < len(queue)][: count - len(drawn)]
        if len(drawn) == count:
            return drawn
    raise DatasetError(
        f"exclusion.genuine={count} but the validation images ({len(images)} images of {len(_by_identity(images))} "
        f"identities, outside calibration and every evaluated pair) give only {len(drawn)} genuine pairs; lower "
        "exclusion.genuine, or for dataset.protocol=all raise dataset.calibration_pool"
    )


def impostor_pairs(images: Sequence[str], count: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """count distinct pairs of images of two identities, drawn uniformly."""
    identity = np.array([identity_of(name) for name in images])
    possible = (len(images) ** 2 - sum(len(m) ** 2 for m in _by_identity(images).values())) // 2
    if count > possible:
        raise DatasetError(
            f"exclusion.impostor={count} but the images of the genuine pairs give only {possible} impostor pairs; "
            "lower exclusion.impostor or raise exclusion.genuine"
        )
    seen: set[tuple[int, int]] = set()
    while len(seen) < count:
        left, right = rng.integers(0, len(images), (2, count))
        for a, b in zip(left.tolist(), right.tolist(), strict=True):
            if identity[a] != identity[b] and len(seen) < count:
                seen.add((min(a, b), max(a, b)))
    return [(images[a], images[b]) for a, b in sorted(seen)]


def validation_pairs(images: Sequence[str], exclusion: ExclusionConfig) -> tuple[Pair, ...]:
    """exclusion.genuine genuine pairs and exclusion.impostor impostor pairs among the images of those genuine pairs
    (so no image is embedded for impostors alone), each label spread evenly over FOLDS folds."""
    rng = np.random.default_rng(exclusion.seed)
    genuine = genuine_pairs(images, exclusion.genuine, rng)
    used = sorted({name for pair in genuine for name in pair})
    impostor = impostor_pairs(used, exclusion.impostor, rng)
    pairs = []
    for label, drawn in ((1, genuine), (0, impostor)):
        folds = rng.permutation(len(drawn)) % FOLDS
        pairs += [Pair(int(fold), label, left, right) for fold, (left, right) in zip(folds, drawn, strict=True)]
    return tuple(pairs)
