"""target=: which CPU a variant's figures hold for, the preset it sets, and the arithmetic it is scored in."""

from __future__ import annotations

import pytest

from facequant.config.sections import ConfigError
from facequant.config.target import TargetConfig
from facequant.machine import host_isa
from helpers.config import settings


@pytest.mark.parametrize(
    ("name", "host", "arithmetic", "measured"),
    [
        ("auto", "avx2", "host", True),
        ("auto", "vnni", "host", True),
        ("avx2", "vnni", "avx2", False),  # saturating pair sums emulated on an exact host
        ("avx2", "amx", "avx2", False),
        ("vnni", "avx2", "exact", False),  # the QDQ graph in float stands for exact accumulation
        ("amx", "vnni", "host", False),  # both exact: the host's kernels compute as the target's, speed differs
        ("vnni", "vnni", "host", True),
        ("avx2", "other", "avx2", False),
    ],
)
def test_the_arithmetic_a_target_is_scored_in(name, host, arithmetic, measured):
    target = TargetConfig(name, host=host)
    assert target.arithmetic == arithmetic and target.speed_measured == measured
    assert target.isa == (host if name == "auto" else name) and target.saturates == (target.isa == "avx2")


def test_avx2_sets_half_range_where_it_saturates_and_an_explicit_setting_wins():
    avx2, vnni = settings("quant=static", "target=avx2"), settings("quant=static", "target=vnni")
    assert avx2.quant.half_range == "saturating" and avx2.preset == ("quant.half_range=saturating",)
    assert vnni.quant.half_range == "none" and vnni.preset == ("quant.half_range=none",)
    assert avx2.variant_name == "int8_static_qdq_minmax_500_avx2" and vnni.variant_name.endswith("_vnni")
    assert avx2.variant_key != vnni.variant_key  # a sweep target=avx2,vnni runs both
    logged = avx2.as_dict()["target"]
    assert (
        logged["isa"] == "avx2" and logged["host"] == host_isa() and logged["preset"] == "quant.half_range=saturating"
    )
    explicit = settings("quant=static", "target=avx2", "quant.half_range=none")
    assert (
        explicit.quant.half_range == "none"
        and explicit.preset == ()
        and explicit.as_dict()["target"]["preset"] == "none"
    )
    # another file than the target's preset gets another name; the preset's own setting, made explicit, does not
    assert explicit.variant_name == "int8_static_qdq_minmax_500_avx2[half_range=none]"
    assert settings("quant=static", "target=vnni", "quant.half_range=none").variant_name == vnni.variant_name
    blanket = settings("quant=static", "target=avx2", "quant.reduce_range=true")
    assert blanket.quant.half_range is None and blanket.preset == ()  # 7 bits everywhere already
    s8s8 = settings("quant=static", "target=avx2", "quant.activation_type=QInt8")
    assert s8s8.quant.half_range is None  # no vpmaddubsw: the preset is for U8S8 only


def test_auto_keeps_the_names_and_keys_of_the_host_and_non_static_variants_ignore_the_target():
    auto = settings("quant=static")
    assert auto.target.isa == host_isa() and auto.variant_name == "int8_static_qdq_minmax_500"
    assert "target" not in auto.effective()  # scored on the host's own kernels: runs before targets are repeats
    for mode in ("fp32", "dynamic"):
        assert settings(f"quant={mode}", "target=avx2").variant_key == settings(f"quant={mode}").variant_key
        assert settings(f"quant={mode}", "target=avx2").arithmetic == "host"
    assert settings("quant=static", "target=avx2", "runtime=openvino").arithmetic == "host"  # ORT's kernels only


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("target.max_saturation=1.5", r"target.max_saturation=1.5 must be a fraction in \[0, 1\)"),
        ("target.kernel_cosine_floor=0", r"target.kernel_cosine_floor=0 must be in \(0, 1\]"),
        ("target.saturation_faces=0", "target.saturation_faces=0 must be >= 1"),
        ("quant.half_range=saturating", None),  # static with it is fine
    ],
)
def test_bad_target_settings_fail_before_any_work(override, message):
    if message is None:
        assert settings("quant=static", override).quant.half_range == "saturating"
        with pytest.raises(ConfigError, match="quant.half_range=saturating picks 7-bit weights"):
            settings("quant=static", override, "quant.reduce_range=true")
        return
    with pytest.raises(ConfigError, match=message):
        settings("quant=static", override)
