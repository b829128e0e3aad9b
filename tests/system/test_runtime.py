"""The runtime layer loads no training framework: checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys


def test_runtime_side_imports_neither_torch_nor_h5py():
    code = (
        "import sys, facequant.runtime.sessions, facequant.quant.quantize, facequant.evaluation.verification, "
        "facequant.runtime.benchmark; "
        "print(sorted(m for m in ('torch', 'h5py') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
