"""The Hydra config composes, and bad values fail before any work with the valid choices listed."""

import os
from dataclasses import replace

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException

from facequant import machine
from facequant.config import settings as loading
from facequant.config.sections import QUANT_DEFAULTS, CalibrationConfig, ConfigError
from facequant.config.settings import load_settings
from facequant.machine import BF16_FLAGS, host_isa
from helpers import REPO


def settings(*overrides):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return load_settings(compose(config_name="config", overrides=list(overrides)))


def test_defaults():
    s = settings()
    assert (s.model.name, s.quant.mode, s.calibration) == ("vggface2", "fp32", None)
    assert s.dataset.folds == 10 and s.dataset.download == "auto"
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
        ("benchmark.threads=0", r"benchmark.threads=\[0\] must be a list of thread counts >= 1"),
        ("benchmark.rounds=4", r"benchmark.rounds=4 cannot give a 95% interval"),
        ("runtime.name=tensorrt", r"runtime.name='tensorrt' is not valid; choose one of: ort, openvino"),
        ("runtime.precision=bf16", r"runtime=ort runs f32 only.*use runtime=openvino for bf16"),
        ("calibration.num_bins=64", r"num_bins=64 must be >= calibration.num_quantized_bins=128"),
    ],
)
def test_out_of_range_values_fail(override, message):
    with pytest.raises(ConfigError, match=message):
        settings(*override.split(","))


def test_file_model_needs_a_path():
    with pytest.raises(Exception, match="model.path"):
        settings("model=file")
    with pytest.raises(ConfigError, match=r"model.path=/no/such.pt is not a file"):
        settings("model=file", "model.path=/no/such.pt")


@pytest.mark.parametrize("mode", ["fp32", "dynamic", "static"])
def test_yaml_defaults_are_the_code_defaults(mode):
    """Variant names list the settings that differ from these, so the two must agree."""
    loaded = settings(f"quant={mode}").quant  # half_range: null in the file, then the target's preset fills it
    assert replace(loaded, half_range=None) == QUANT_DEFAULTS[mode]
    assert loaded.half_range == (None if mode != "static" else "saturating" if host_isa() == "avx2" else "none")


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile", "distribution"])
def test_calibration_yaml_defaults_are_the_code_defaults(method):
    assert settings("quant=static", f"calibration={method}").calibration == CalibrationConfig(method=method)


def test_non_static_variants_carry_no_calibration():
    for mode in ("fp32", "dynamic"):
        a, b = settings(f"quant={mode}", "calibration=entropy"), settings(f"quant={mode}", "calibration.seed=3")
        assert a.calibration is None and "calibration" not in a.as_dict()
        assert a.variant_key == b.variant_key and a.variant_name == b.variant_name
    static = [settings("quant=static", f"calibration={m}").variant_key for m in ("minmax", "entropy")]
    assert static[0] != static[1]


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        (["quant.per_channel=false"], "int8_static_qdq_minmax_500[per_channel=false]"),
        (["quant.per_channel=true"], "int8_static_qdq_minmax_500"),
        (["quant.reduce_range=true", "calibration.seed=3"], "int8_static_qdq_minmax_500[reduce_range=true,seed=3]"),
        (["quant.op_types=[Conv,MatMul]"], "int8_static_qdq_minmax_500[op_types=Conv+MatMul]"),
    ],
)
def test_non_default_settings_appear_in_the_name(overrides, name):
    assert settings("quant=static", *overrides).variant_name == name


def test_dynamic_ignores_static_only_keys():
    a, b = settings("quant=dynamic"), settings("quant=dynamic", "+quant.activation_type=QInt8")
    assert a.variant_name == b.variant_name == "int8_dynamic" and a.variant_key == b.variant_key


def test_unknown_top_level_key_fails():
    with pytest.raises(ConfigError, match=r"unknown top-level key\(s\) foo"):
        settings("+foo=1")


def test_benchmark_times_one_thread_and_every_core_by_default():
    assert settings().benchmark.threads == tuple(dict.fromkeys((1, os.cpu_count())))


@pytest.mark.parametrize(
    ("overrides", "name", "reference"),
    [
        (["quant=fp32"], "fp32", True),
        (["quant=fp32", "runtime=openvino"], "fp32@openvino", False),
        (["quant=static", "runtime=openvino"], "int8_static_qdq_minmax_500@openvino", False),
        (
            ["quant=static", "quant.per_channel=false", "runtime=ort"],
            "int8_static_qdq_minmax_500[per_channel=false]",
            False,
        ),
    ],
)
def test_runtime_appears_in_the_name_unless_ort_f32(overrides, name, reference):
    s = settings(*overrides)
    assert s.variant_name == name and s.is_reference is reference


def test_runtimes_are_distinct_variants():
    keys = {settings("quant=static", f"runtime={r}").variant_key for r in ("ort", "openvino")}
    assert len(keys) == 2


def fake_cpu(monkeypatch, bf16_flag: str | None) -> None:
    """This CPU as it is, but named "Test CPU" and with only bf16_flag of the bf16 flags: the check is decided by
    what the CPU reports, whatever the machine running the tests has."""
    _, flags = machine.cpu()
    fake = ("Test CPU", frozenset(flags - set(BF16_FLAGS) | ({bf16_flag} if bf16_flag else set())))
    monkeypatch.setattr(machine, "cpu", lambda: fake)
    monkeypatch.setattr(loading, "cpu", lambda: fake)  # load_settings probes the CPU once, through its own import


def test_bf16_without_cpu_support_fails_at_once(monkeypatch):
    fake_cpu(monkeypatch, None)
    message = r"runtime.precision=bf16 needs a CPU with avx512_bf16 or amx_bf16; this one \(Test CPU\) has neither"
    with pytest.raises(ConfigError, match=message):
        settings("runtime=openvino", "runtime.precision=bf16")
    assert settings("runtime=openvino").variant_name == "fp32@openvino"  # f32 needs no flag


def test_bf16_is_named_where_the_cpu_has_it(monkeypatch):
    for flag in BF16_FLAGS:  # either flag is enough
        fake_cpu(monkeypatch, flag)
        assert settings("runtime=openvino", "runtime.precision=bf16").variant_name == "fp32@openvino-bf16"


def test_flip_fusion_is_a_distinct_variant_and_leaves_other_keys_alone():
    plain, flipped = settings("quant=static"), settings("quant=static", "eval.flip=true")
    assert flipped.variant_name == "int8_static_qdq_minmax_500+flip" and flipped.variant_key != plain.variant_key
    assert settings("quant=fp32", "eval.flip=true").is_reference  # the baseline of flip-fused variants
    batch = settings("quant=static", "eval.batch_size=8")
    assert batch.variant_key == plain.variant_key and "eval_flip" not in plain.effective()
