"""Cache primitives: stable keys, file hashes, atomic writes that never leave half a file, JSON entries that are
removed when damaged, and the build lock that makes jobs sharing a cache build an entry once."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from facequant.cache.files import atomic_path, exclusive, key_of, read_json, record_path, sha256_file, write_json


def test_a_key_is_short_hex_the_same_for_equal_settings_and_differs_for_others():
    settings = {"method": "minmax", "per_channel": True, "ops": ["Conv", "MatMul"]}
    key = key_of(settings)
    assert len(key) == 16 and int(key, 16) >= 0
    assert key_of(dict(reversed(list(settings.items())))) == key  # the order keys were written in does not count
    assert key_of(settings | {"per_channel": False}) != key
    assert key_of(settings | {"ops": ["MatMul", "Conv"]}) != key  # the order within a list does
    assert key_of(settings, "1.22") != key_of(settings, "1.23")  # every part counts
    assert key_of(Path("/a")) == key_of("/a")  # what JSON cannot hold is keyed by its text


def test_the_file_hash_is_sha256_of_every_byte_whatever_the_chunk(tmp_path):
    path = tmp_path / "blob.bin"
    content = bytes(range(256)) * 41 + b"tail"
    path.write_bytes(content)
    expected = hashlib.sha256(content).hexdigest()
    assert sha256_file(path) == expected
    assert sha256_file(path, chunk=7) == expected  # chunks that do not divide the size
    path.write_bytes(content[:-1])
    assert sha256_file(path) != expected


def test_a_failed_write_keeps_the_old_entry_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "entries" / "model.onnx"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target and not target.exists()
        tmp.write_bytes(b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half of the sec")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.onnx"]


KILLED_WRITER = """
import os, sys
from pathlib import Path
from facequant.cache.files import atomic_path
with atomic_path(Path(sys.argv[1])) as tmp:
    tmp.write_bytes(b"half an entry")
    os.kill(os.getpid(), 9)
"""


def test_a_killed_writers_temporary_file_is_removed_when_its_entry_is_next_built(tmp_path):
    target = tmp_path / "model.onnx"
    assert subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)]).returncode == -9
    (orphan,) = tmp_path.glob(".model.onnx.*.tmp")
    live = tmp_path / f".model.onnx.{socket.gethostname()}-{os.getpid()}.abc.tmp"  # a writer still at work
    remote = tmp_path / ".model.onnx.worker-7-1.abc.tmp"  # another machine's, on a shared cache
    for tmp in (live, remote):
        tmp.write_bytes(b"")
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and not orphan.exists() and live.exists() and remote.exists()


def test_json_entries_round_trip_and_a_damaged_one_is_removed_with_its_path_logged(tmp_path, caplog):
    path = tmp_path / "record.json"
    assert read_json(path) is None  # missing: nothing to remove
    write_json(path, {"b": 1, "a": [1, 2], "where": tmp_path})
    assert read_json(path) == {"a": [1, 2], "b": 1, "where": str(tmp_path)}
    assert list(json.loads(path.read_text())) == ["a", "b", "where"]  # sorted keys: equal records, equal files
    path.write_text('{"a": [1, 2')
    with caplog.at_level(logging.WARNING):
        assert read_json(path) is None
    assert not path.exists() and str(path) in caplog.text and "unusable" in caplog.text


def test_a_record_sits_beside_its_file():
    assert record_path(Path("/cache/onnx/k/fp32.onnx")) == Path("/cache/onnx/k/fp32.onnx.json")


def test_a_second_builder_waits_until_the_first_releases_the_entry(tmp_path, caplog):
    target = tmp_path / "onnx" / "variant.onnx"
    events: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with exclusive(target):
            events.append("first builds")
            holding.set()
            time.sleep(0.5)
            target.write_bytes(b"built")
            events.append("first done")

    def second() -> None:
        holding.wait(10)
        with exclusive(target):
            events.append(f"second finds {target.read_bytes().decode()}")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    with caplog.at_level(logging.INFO):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert events == ["first builds", "first done", "second finds built"]
    assert "waiting for another job that is building" in caplog.text and str(target) in caplog.text
    assert (tmp_path / "onnx" / "variant.onnx.lock").exists()  # the lock is a file beside the entry
