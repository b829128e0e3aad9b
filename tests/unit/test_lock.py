"""The lock the set-up installs from: it pins every dependency inside pyproject.toml's ranges, with hashes, and
this environment is exactly that set, which every run records."""

from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement

from facequant.machine import LOCK, _canonical, environment, installed_versions, locked_versions
from facequant.schema import Param
from helpers import REPO


def _pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in [*project["dependencies"], *extras["dev"], *extras["ray"], *extras["server"]]]


def test_every_dependency_is_locked_inside_its_range_with_hashes():
    locked = locked_versions()
    for req in _pyproject_requirements():
        name = _canonical(req.name)
        assert name in locked, f"{req} is not in requirements/lock.txt: run scripts/lock.sh"
        assert req.specifier.contains(locked[name], prereleases=True), f"lock has {name}=={locked[name]}, not {req}"
    entries = re.split(r"\n(?=[a-z0-9])", LOCK.read_text().split("\n", 2)[2])
    unhashed = [e.split()[0] for e in entries if e.strip() and "--hash=sha256:" not in e]
    assert not unhashed, f"entries without a hash: {unhashed}"


def test_opencv_is_locked_to_a_release_whose_dnn_reads_tensorflow_graphs():
    import cv2

    assert hasattr(cv2.dnn, "readNetFromTensorflow"), f"OpenCV {cv2.__version__} lost its TensorFlow importer"


def test_this_environment_is_the_locked_set_and_runs_record_it():
    params, text = environment()
    assert params[Param.ENV_LOCK_DRIFT] == "none", f"installed versions differ from the lock: {params}"
    assert re.fullmatch(r"[0-9a-f]{64}", params[Param.ENV_LOCK_SHA256])
    installed = installed_versions()
    for name in ("torch", "onnxruntime", "mlflow", "facenet-pytorch"):
        assert f"{name}=={installed[name]}\n" in text
    assert len(text.splitlines()) == len(installed) + 2  # the two header lines, then one line a distribution


def test_facenet_pytorch_is_hash_locked_for_its_no_deps_install():
    nodeps = (REPO / "requirements" / "nodeps.txt").read_text()
    assert re.search(r"^facenet-pytorch==2\.6\.0 \\\n\s+--hash=sha256:[0-9a-f]{64}", nodeps, re.MULTILINE)
    assert installed_versions()["facenet-pytorch"] == "2.6.0"


def test_conda_env_and_mlproject_install_the_locks():
    """`mlflow run .` with conda gets the README set-up's exact stack: conda.yaml's pip list is the lock, and the
    entry points install facenet-pytorch from its own lock without its dependencies."""
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert pip == ["--require-hashes", "-r requirements/lock.txt"]
    assert (REPO / "requirements" / "lock.txt").is_file()  # conda resolves -r next to conda.yaml
    assert "python=3.11" in conda["dependencies"]
    entry = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]["main"]["command"]
    assert "pip install -q --no-deps --require-hashes -r requirements/nodeps.txt" in entry
