"""The MMM configuration: the shipped file is valid, mistakes are refused with the key named,
post-treatment controls are refused, overrides apply by channel name, samplers that are not
installed fail with a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmm_platform.mmm.config import ConfigError, load_config, parse_config
from mmm_platform.mmm.fit import SamplerUnavailable, check_sampler


def test_the_shipped_configuration_is_valid():
    cfg = load_config()
    assert cfg.grain == "week"
    assert cfg.sampler.name == "nutpie"
    assert cfg.adstock.form == "delayed" and cfg.saturation.form == "hill"
    assert {"temp_mean_c", "precip_mm", "fc_temp_anom_l1", "discount_depth", "stockout_rate"} <= {
        c.name for c in cfg.controls
    }
    assert cfg.l_max == 5  # 35 days at weekly grain


def test_unknown_keys_are_errors_that_name_the_key(tmp_path: Path):
    path = tmp_path / "mmm.yaml"
    path.write_text("grain: week\nsampler:\n  nme: nutpie\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "sampler.nme" in str(err.value) and "unknown key" in str(err.value)
    with pytest.raises(ConfigError, match="grain"):
        parse_config({"grain": "month"})
    with pytest.raises(ConfigError, match="no MMM configuration file"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "expr", ["sessions", "footfall_index * 2", "log(search_trend_index)", "attributed_revenue", "spend_group_brand"]
)
def test_post_treatment_controls_are_refused(expr: str):
    with pytest.raises(ConfigError, match="post-treatment"):
        parse_config({"controls": [{"name": "bad", "expr": expr}]})


def test_a_control_may_use_a_word_inside_a_string_or_a_safe_column():
    cfg = parse_config({"controls": [{"name": "hot", "expr": "CASE WHEN precip_type = 'sessions' THEN 1 ELSE 0 END"}]})
    assert cfg.controls[0].name == "hot"


def test_channel_overrides_apply_by_name_and_unknown_channels_get_defaults():
    cfg = parse_config({"channels": {"overrides": {"tv": {"roas": {"median": 2.0, "log_sd": 0.3}}}}})
    tv, other = cfg.channel_priors("tv"), cfg.channel_priors("radio")
    assert tv.roas.median == 2.0 and tv.half_saturation == cfg.priors.defaults.half_saturation
    assert other.roas is None and other.adstock_alpha_daily == cfg.priors.defaults.adstock_alpha_daily


def test_numpyro_is_an_option_that_fails_clearly_when_missing():
    import importlib.util

    cfg = parse_config({"sampler": {"name": "numpyro"}})
    assert cfg.sampler.name == "numpyro"
    if importlib.util.find_spec("numpyro") is None:
        with pytest.raises(SamplerUnavailable, match=r"numpyro.*not installed"):
            check_sampler("numpyro")
    check_sampler("nutpie")
