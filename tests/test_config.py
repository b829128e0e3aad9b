"""The Hydra config composes, and bad values fail before any work with the valid choices listed."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException

from conftest import REPO
from facequant.config import ConfigError, load_settings


def settings(*overrides):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return load_settings(compose(config_name="config", overrides=list(overrides)))


def test_defaults():
    s = settings()
    assert (s.model.name, s.quant.mode, s.calibration.method) == ("vggface2", "fp32", "minmax")
    assert s.calibration.num_samples == 500 and s.dataset.folds == 10
    assert s.align.selection_method == "center_weighted_size" and s.align.image_size == 160
    assert s.mlflow.tracking_uri.startswith("sqlite:///") or s.mlflow.tracking_uri


def test_static_variant_name_and_defaults():
    s = settings("quant=static", "calibration=entropy", "calibration.num_samples=100", "model=msceleb128")
    assert s.variant_name == "int8_static_qdq_entropy_100"
    assert (s.quant.per_channel, s.quant.activation_type, s.quant.weight_type) == (True, "QUInt8", "QInt8")
    assert (s.calibration.num_bins, s.calibration.num_quantized_bins) == (2048, 128)
    assert s.model.preprocess == "per_image" and s.model.embedding_size == 128


def test_dynamic_defaults_to_matmul_gemm():
    s = settings("quant=dynamic")
    assert s.quant.op_types == ("MatMul", "Gemm") and s.variant_name == "int8_dynamic"


def test_unknown_group_value_lists_choices():
    with pytest.raises(MissingConfigException, match="(?s)quant/int4.*Available options.*dynamic.*static"):
        settings("quant=int4")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dataset.folds=11", r"dataset.folds=11 is out of range; choose 1..10"),
        ("calibration.num_samples=0", r"calibration.num_samples=0 is out of range"),
        ("calibration.method=kl", r"calibration.method='kl' is not valid; choose one of: minmax, entropy"),
        (
            "quant=static,quant.weight_type=QInt4",
            r"quant.weight_type='QInt4' is not valid; choose one of: QUInt8, QInt8",
        ),
        ("align.selection_method=first", r"choose one of: center_weighted_size, probability"),
        ("model.preprocess=none", r"model.preprocess='none' is not valid; choose one of: fixed, per_image"),
        ("benchmark.threads=0", r"benchmark.threads=0 is out of range"),
        ("calibration.num_bins=64", r"num_bins=64 must be >= calibration.num_quantized_bins=128"),
    ],
)
def test_out_of_range_values_fail(override, message):
    with pytest.raises(ConfigError, match=message):
        settings(*override.split(","))


def test_file_model_needs_a_path():
    with pytest.raises(Exception, match="model.path"):
        settings("model=file")
