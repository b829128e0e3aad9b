"""LFW downloaded into a root: the funneled images and pairs.txt from the figshare mirror scikit-learn's fetcher
uses, each checked against its sha256, and moved into place whole."""

from __future__ import annotations

import logging
import os
import tarfile
import tempfile
from pathlib import Path

from facequant.cache.download import download
from facequant.cache.files import exclusive

log = logging.getLogger(__name__)

# (url, sha256), as in scikit-learn's sklearn/datasets/_lfw.py
PAIRS = (
    "https://ndownloader.figshare.com/files/5976006",
    "ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592",
)
FUNNELED = (
    "https://ndownloader.figshare.com/files/5976015",
    "b47c8422c8cded889dc5a13418c4bc2abbda121092b3533a83306f90d900100a",
)
IMAGES = "lfw_funneled"  # the folder lfw-funneled.tgz unpacks into
SIZE = "about 240 MB"


def fetch_lfw(root: Path) -> None:
    """Download LFW into root. The images folder, then pairs.txt are renamed into root from a temporary folder
    beside them, so root holds a complete layout or none; raises OSError (DownloadError offline)."""
    root.mkdir(parents=True, exist_ok=True)
    with exclusive(root / ".download"), tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        if (root / "pairs.txt").is_file() and (root / IMAGES).is_dir():
            return  # another process downloaded it while this one waited
        log.info("LFW is not under %s: downloading it (%s)", root, SIZE)
        pairs = download(PAIRS[0], Path(tmp) / "pairs.txt", PAIRS[1])  # small: offline fails here, at once
        archive = download(FUNNELED[0], Path(tmp) / "lfw-funneled.tgz", FUNNELED[1])
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        images = root / IMAGES
        if images.exists():
            raise FileExistsError(f"{images} exists without pairs.txt beside it (an interrupted download?); remove it")
        os.rename(Path(tmp) / IMAGES, images)
        os.rename(pairs, root / "pairs.txt")
        log.info("LFW downloaded into %s", root)
