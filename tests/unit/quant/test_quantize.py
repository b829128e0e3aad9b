"""A model the CPU execution provider cannot run fails with a clear error."""

import pytest

from facequant.quant.quantize import QuantizationError, check_runnable
from helpers import unrunnable_model


def test_a_model_the_cpu_ep_cannot_run_fails_clearly(tmp_path):
    path = unrunnable_model(tmp_path / "bad.onnx")
    with pytest.raises(
        QuantizationError, match=r"CPU EP cannot run the int8_dynamic model .*NOT_IMPLEMENTED.*quant.op_types"
    ):
        check_runnable(path, "int8_dynamic", (1, 3, 8, 8))
