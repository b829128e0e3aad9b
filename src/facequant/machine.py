"""What CPU a figure came from: model name, the ISA flags that decide INT8 and BF16 speed, and library versions."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
import sys
from functools import cache
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path

from facequant.schema import Param

ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "i8mm",
)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # what OpenVINO's CPU plugin needs to run bf16 natively
PACKAGES = (
    "torch",
    "onnx",
    "onnxruntime",
    "openvino",
    "facenet-pytorch",
    "mlflow",
    "hydra-core",
    "scikit-learn",
    "numpy",
)


@cache
def cpu() -> tuple[str, frozenset[str]]:
    """(model name, ISA flags) from /proc/cpuinfo; the platform's processor name and no flags elsewhere."""
    model, flags = platform.processor() or platform.machine(), frozenset()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = frozenset(value.split())
    return model, flags


def job_cpus() -> int | None:
    """The CPUs a Ray task was given (its num_cpus), when this process runs one; None elsewhere, where a job may
    use every core. Read from Ray itself: OMP_NUM_THREADS is often set for other reasons."""
    ray = sys.modules.get("ray")  # imported only in a Ray worker (or by a driver), never by facequant itself
    if ray is None or not ray.is_initialized():
        return None
    try:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # a driver, not a task: it has no assigned resources
        return None
    return max(1, int(cpus)) if cpus else None


def usable_cpus() -> int:
    """The CPUs this process may run on: a Ray task's share, else the affinity mask (a container's limit), else all."""
    if cpus := job_cpus():
        return cpus
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def has_bf16() -> bool:
    return bool(set(BF16_FLAGS) & cpu()[1])


def machine_info() -> dict[str, str]:
    """CPU model, ISA flags, core count and library versions, logged with every run."""
    model, flags = cpu()
    info = {
        Param.CPU_MODEL: model,
        Param.CPU_ISA: ",".join(f for f in ISA_FLAGS if f in flags) or "unknown",
        "cpu.count": str(os.cpu_count()),
        "cpu.job_cpus": str(job_cpus() or os.cpu_count()),
        "python": platform.python_version(),
    }
    for pkg in PACKAGES:
        try:
            info[f"version.{pkg}"] = version(pkg)
        except PackageNotFoundError:
            info[f"version.{pkg}"] = "absent"
    return info


# The hash-checked lock the README's set-up installs from, when facequant runs from its checkout.
LOCK = Path(__file__).resolve().parents[2] / "requirements" / "lock.txt"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock: Path = LOCK) -> dict[str, str]:
    """{package: version} pinned by a requirements lock (name==version lines)."""
    return {_canonical(name): pin for name, pin in _PIN.findall(lock.read_text())}


def installed_versions() -> dict[str, str]:
    """{package: version} of every distribution this interpreter imports from: the `pip freeze` of the run."""
    return {_canonical(d.metadata["Name"]): d.version for d in distributions() if d.metadata["Name"]}


@cache
def environment() -> tuple[dict[str, str], str]:
    """(params, text): the lock's sha256 and which installed versions differ from it, and the whole resolved
    environment as name==version lines, so that a figure can be traced to its exact stack."""
    installed = installed_versions()
    lines = [f"{name}=={installed[name]}" for name in sorted(installed)]
    if not LOCK.is_file():
        params = {Param.ENV_LOCK_SHA256: "absent", Param.ENV_LOCK_DRIFT: "no lock"}
        return params, "\n".join(["# no requirements/lock.txt beside this facequant", *lines]) + "\n"
    locked = locked_versions()
    drift = sorted(f"{n}=={installed.get(n, 'absent')} (lock {v})" for n, v in locked.items() if installed.get(n) != v)
    sha = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    params = {Param.ENV_LOCK_SHA256: sha, Param.ENV_LOCK_DRIFT: "; ".join(drift)[:500] or "none"}
    header = [f"# requirements/lock.txt sha256 {sha}", f"# differs from the lock: {'; '.join(drift) or 'nothing'}"]
    return params, "\n".join([*header, *lines]) + "\n"


VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def host_isa(flags: frozenset[str] | None = None) -> str:
    """The x86 INT8 target this CPU is: amx, vnni (32-bit exact u8 x s8 dot products), avx2 (ONNX Runtime's U8S8
    kernels add product pairs in saturating 16 bits), or other (no AVX2: not an x86 INT8 target facequant knows)."""
    flags = cpu()[1] if flags is None else flags
    if "amx_int8" in flags:
        return "amx"
    if flags & VNNI_FLAGS:
        return "vnni"
    return "avx2" if "avx2" in flags else "other"


def git_commit() -> str:
    """HEAD of the checkout this code runs from, with '-dirty' if it has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty else "")
