"""The settings a job would get from conf/ with these command-line overrides, composed as src/main.py composes them."""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from facequant.config.settings import Settings, load_settings

from .paths import REPO


def settings(*overrides: str) -> Settings:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return load_settings(compose(config_name="config", overrides=list(overrides)))
