"""Files fetched over HTTP: a progress bar, a timeout that fails offline in seconds, a checked sha256, and the file
in place only once it is whole."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import requests
from tqdm import tqdm

from facequant.cache.files import atomic_path

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10  # offline, a name lookup fails at once; a dropped connection waits this long
READ_TIMEOUT_S = 60


class DownloadError(OSError):
    """A file could not be fetched, or its content is not the one expected."""


def download(url: str, target: Path, sha256: str | None) -> Path:
    """Fetch url to target with a progress bar; target appears only whole, and with the expected sha256 if one is
    given."""
    log.info("downloading %s to %s", url, target)
    digest = hashlib.sha256()
    try:
        with (
            requests.get(url, stream=True, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)) as response,
            atomic_path(target) as tmp,
        ):
            response.raise_for_status()
            size = int(response.headers.get("content-length") or 0) or None
            with open(tmp, "wb") as fh, tqdm(total=size, unit="B", unit_scale=True, desc=target.name) as bar:
                for block in response.iter_content(chunk_size=1 << 20):
                    fh.write(block)
                    digest.update(block)
                    bar.update(len(block))
            if sha256 is not None and digest.hexdigest() != sha256:
                raise DownloadError(f"{url} has sha256 {digest.hexdigest()}, expected {sha256}")
    except requests.RequestException as exc:
        raise DownloadError(f"cannot fetch {url}: {type(exc).__name__}") from exc  # its text: a page of urllib3
    return target
