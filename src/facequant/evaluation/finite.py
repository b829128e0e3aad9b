"""A model's embeddings must be finite: one NaN makes every score of its face NaN, which scikit-learn refuses and
the all-pairs histogram silently bins as the lowest score."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


class NonFiniteEmbeddings(ValueError):
    """The model returned NaN or infinite embeddings, so no metric of it means anything."""


def check_finite(embeddings: np.ndarray, names: Sequence[str], model: Path) -> None:
    """Refuse a whole evaluation's embeddings (rows in names order) when any is not finite, naming the model file,
    the first face and how many."""
    bad = ~np.isfinite(embeddings).all(axis=1)
    if not bad.any():
        return
    first = int(np.argmax(bad))
    raise NonFiniteEmbeddings(
        f"{model} returned non-finite embeddings (NaN or inf) for {int(bad.sum())} of {len(names)} faces, the first "
        f"{names[first]}: its scores would be meaningless. Check the model on that face (a broken export, or an "
        "overflow in its arithmetic); a quantized variant may need other calibration or float nodes (quant.exclude)"
    )
