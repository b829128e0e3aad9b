"""Cache primitives: stable keys, atomic writes with normal file modes, and reads that reject damaged entries."""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import socket
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from filelock import FileLock, Timeout

log = logging.getLogger(__name__)


def key_of(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable settings."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def _remove_stale(target: Path) -> None:
    """Remove target's temporary files left by writers on this host whose process is gone (kill -9, an OOM kill):
    each temporary file names its writer, `.<entry>.<host>-<pid>.<random>.tmp`."""
    head, here = f".{target.name}.", socket.gethostname()
    for tmp in target.parent.glob(f"{glob.escape(head)}*.tmp"):
        host, _, pid = tmp.name[len(head) : -len(".tmp")].rpartition(".")[0].rpartition("-")
        if host == here and pid.isdigit() and not psutil.pid_exists(int(pid)):
            log.info("removing %s, left by process %s, which is gone", tmp, pid)
            tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside target; it replaces target only if the block succeeds.

    mkstemp creates files 0600; the entry gets the mode the umask gives any new file, so a shared cache is
    readable by its other users. Temporary files of target that a dead writer on this host left are removed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    writer = f"{socket.gethostname()}-{os.getpid()}"
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{writer}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def exclusive(target: Path) -> Iterator[None]:
    """Hold target's build lock (a file beside it), so that jobs sharing cache_dir build an entry once: the holder
    builds, the others wait and then find it. Check whether the entry exists only while holding the lock."""
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another job that is building %s", target)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def write_json(target: Path, data: Any) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))


def discard(path: Path, reason: str) -> None:
    """Remove a damaged or foreign cache entry, saying which and why, so that it is rebuilt."""
    log.warning("cache entry %s is unusable (%s); removing it and rebuilding", path, reason)
    path.unlink(missing_ok=True)


def read_json(path: Path) -> Any | None:
    """The JSON entry at path, or None (entry removed) when it is missing or cannot be parsed."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        discard(path, f"{type(exc).__name__}: {exc}")
        return None


def save_npz(target: Path, **arrays: Any) -> None:
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays of an .npz entry, or None (entry removed) when it is missing, truncated or lacks a key."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as entry:
            return {k: entry[k] for k in keys}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        discard(path, f"{type(exc).__name__}: {exc}")
        return None


def write_file_record(path: Path, identity: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """Record beside a cached file what it is (identity) and its sha256, checked before it is trusted."""
    write_json(record_path(path), {"identity": identity, "sha256": sha256_file(path)} | (extra or {}))


def record_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def verified_file(path: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The record of a cached file whose content and identity match it; else None, the entry removed."""
    record = read_json(record_path(path))
    if not path.is_file():
        return None
    if record is None:
        discard(path, "no record of its sha256")
        return None
    if json.loads(json.dumps(identity, default=str)) != record.get("identity"):
        discard(path, "its record names other settings")
        record_path(path).unlink(missing_ok=True)
        return None
    digest = sha256_file(path)
    if digest != record.get("sha256"):
        discard(path, f"sha256 {digest[:12]}... differs from the recorded {str(record.get('sha256'))[:12]}...")
        record_path(path).unlink(missing_ok=True)
        return None
    return record
