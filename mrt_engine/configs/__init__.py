"""Deprecated: the shipped run configs moved to :mod:`mrt_engine.config.presets`.

Kept for one release so ``from mrt_engine.configs import shipped_config`` keeps working, with a
``DeprecationWarning`` that names the new path.
"""
import warnings

from mrt_engine.config.presets import CONFIG_DIR, config_path, shipped_config

warnings.warn("mrt_engine.configs is deprecated and will be removed in the next release; "
              "use mrt_engine.config.presets", DeprecationWarning, stacklevel=2)

__all__ = ["CONFIG_DIR", "config_path", "shipped_config"]
