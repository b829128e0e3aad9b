"""dataset.download=auto: LFW is downloaded into the default root only, checked against its sha256 and moved into
place whole; offline, the error names both fixes. The archive is served from 127.0.0.1, no network."""

from __future__ import annotations

import hashlib
import tarfile
import threading
from functools import partial
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import pytest

from facequant.config.sections import DEFAULT_LFW_ROOT, DatasetConfig
from facequant.config.settings import default_lfw_root
from facequant.data import download
from facequant.data.lfw import DatasetError, load_lfw
from helpers import make_lfw


class Quiet(SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *_) -> None:
        Quiet.requests.append(self.path)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A tiny LFW as the mirror serves it (pairs.txt, lfw-funneled.tgz), and the download pointed at it."""
    served = tmp_path / "served"
    make_lfw(served / "src", images="lfw_funneled")
    with tarfile.open(served / "lfw-funneled.tgz", "w:gz") as tar:
        tar.add(served / "src" / "lfw_funneled", arcname="lfw_funneled")
    (served / "pairs.txt").write_bytes((served / "src" / "pairs.txt").read_bytes())
    server = HTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setattr(download, "PAIRS", (f"{url}/pairs.txt", sha256(served / "pairs.txt")))
    monkeypatch.setattr(download, "FUNNELED", (f"{url}/lfw-funneled.tgz", sha256(served / "lfw-funneled.tgz")))
    monkeypatch.chdir(tmp_path)  # the default root, data/lfw, is below the working directory
    Quiet.requests = []
    yield served
    server.shutdown()


def test_the_default_root_matches_the_config():
    lfw_yaml = (Path(__file__).parents[3] / "conf" / "dataset" / "lfw.yaml").read_text()
    assert f"root: {DEFAULT_LFW_ROOT} " in lfw_yaml and "download: auto " in lfw_yaml
    assert DatasetConfig(root="x").download == "auto"


def test_auto_downloads_into_the_default_root(mirror, tmp_path):
    lfw = load_lfw(DatasetConfig(root=str(default_lfw_root()), folds=1))
    root = tmp_path / DEFAULT_LFW_ROOT
    assert lfw.images_dir == root / "lfw_funneled" and lfw.image_count == 6
    assert sha256(root / "pairs.txt") == sha256(mirror / "pairs.txt")
    assert not [p for p in root.iterdir() if p.name.startswith(".download-")]  # the temporary folder is gone
    assert Quiet.requests == ["/pairs.txt", "/lfw-funneled.tgz"]
    load_lfw(DatasetConfig(root=str(default_lfw_root()), folds=1))
    assert len(Quiet.requests) == 2  # found, not fetched again


@pytest.mark.parametrize("download_value", ["auto", False])
def test_a_root_you_give_is_never_downloaded_into(mirror, tmp_path, download_value):
    with pytest.raises(DatasetError, match=r"LFW not found: .*typo has no pairs.txt.*Set dataset.root"):
        load_lfw(DatasetConfig(root=str(tmp_path / "typo"), download=download_value))
    assert not (tmp_path / "typo").exists() and Quiet.requests == []


def test_download_true_fills_a_root_you_give(mirror, tmp_path):
    assert load_lfw(DatasetConfig(root=str(tmp_path / "mine"), folds=1, download=True)).image_count == 6


def test_a_damaged_download_is_not_moved_into_place(mirror, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "FUNNELED", (download.FUNNELED[0], "0" * 64))
    with pytest.raises(DatasetError, match=r"downloading it there failed .*has sha256 .*expected 0000"):
        load_lfw(DatasetConfig(root=str(default_lfw_root())))
    assert sorted(p.name for p in (tmp_path / DEFAULT_LFW_ROOT).iterdir()) == [".download.lock"]


def test_offline_the_error_names_both_fixes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(download, "PAIRS", ("http://127.0.0.1:9/pairs.txt", "0" * 64))  # nothing listens on 9
    with pytest.raises(DatasetError) as error:
        load_lfw(DatasetConfig(root=str(default_lfw_root())))
    message = str(error.value)
    assert "cannot fetch http://127.0.0.1:9/pairs.txt: ConnectionError" in message
    assert "give a local copy: dataset.root=<the folder that holds pairs.txt" in message
    internet = f"run once on a machine with internet, which downloads LFW (about 240 MB) into {tmp_path / 'data/lfw'}"
    assert internet in message
