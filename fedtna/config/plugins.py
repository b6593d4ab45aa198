"""Hydra launchers and sweepers of the ``sweeps`` extra: one clear line, before Hydra starts, when one is missing.

Without the plugin Hydra fails with a long traceback (``Could not find 'hydra/launcher/joblib'``);
:func:`missing_sweeps_plugin` reads the command line's overrides (and the ``experiment`` presets they
select) and names the extra instead.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

SWEEPS_INSTALL = 'pip install "fedtna[sweeps]"'
JOBLIB = "hydra_plugins.hydra_joblib_launcher"
SUBMITIT = "hydra_plugins.hydra_submitit_launcher"
OPTUNA = "hydra_plugins.hydra_optuna_sweeper"
# (config group, option) -> the plugin module that provides it; option None = every option of the group
PLUGINS: dict[tuple[str, str | None], str] = {
    ("hydra/launcher", "joblib"): JOBLIB,
    ("hydra/launcher", "submitit_local"): SUBMITIT,
    ("hydra/launcher", "submitit_slurm"): SUBMITIT,
    ("hydra/launcher", "slurm"): SUBMITIT,  # fedtna's conf/hydra/launcher/slurm.yaml extends submitit_slurm
    ("hydra/sweeper", "optuna"): OPTUNA,
    ("hydra/sweeper/sampler", None): OPTUNA,
}
OVERRIDE = re.compile(r"^(?:\+\+|\+)?(?P<group>[\w/]+)=(?P<value>[\w,.-]+)$")
DEFAULTS_OVERRIDE = re.compile(r"^override\s+/?(?P<group>[\w/]+)$")


def importable(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (optuna alone takes seconds)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def plugin_choices(overrides: Sequence[str], conf_dir: Path) -> Iterator[tuple[str, str, str]]:
    """``(what the user wrote, group, option)`` for every launcher or sweeper the overrides select,
    directly (``hydra/launcher=joblib``) or through an ``experiment=`` preset's defaults list."""
    for override in overrides:
        match = OVERRIDE.match(override)
        if match is None:
            continue
        group, value = match["group"], match["value"]
        if group.startswith("hydra/"):
            yield override.lstrip("+"), group, value
        elif group == "experiment":
            for preset in value.split(","):
                for preset_group, option in preset_overrides(conf_dir / "experiment" / f"{preset}.yaml"):
                    yield f"experiment={preset} ({preset_group}={option})", preset_group, option


def preset_overrides(path: Path) -> Iterator[tuple[str, str]]:
    """``(group, option)`` of each ``override /hydra/...: option`` in a preset's defaults list."""
    preset = OmegaConf.load(path) if path.is_file() else None
    defaults = preset.get("defaults", []) if isinstance(preset, DictConfig) else []
    for entry in defaults:  # "_self_" or {"override /hydra/sweeper": "optuna"}
        for key, option in entry.items() if isinstance(entry, DictConfig) else ():
            match = DEFAULTS_OVERRIDE.match(str(key))
            if match and match["group"].startswith("hydra/"):
                yield match["group"], str(option)


def missing_sweeps_plugin(overrides: Sequence[str], conf_dir: Path) -> str | None:
    """The one-line error for the first selected launcher or sweeper whose plugin is not installed."""
    for shown, group, option in plugin_choices(overrides, conf_dir):
        module = PLUGINS.get((group, option)) or PLUGINS.get((group, None))
        if module is None or importable(module):
            continue
        if module == OPTUNA and sys.version_info >= (3, 12):
            return (f"{shown} needs hydra-optuna-sweeper, which the sweeps extra installs on Python 3.11 only "
                    f"(optuna<3): there, {SWEEPS_INSTALL}")
        return f"{shown} needs the sweeps extra: {SWEEPS_INSTALL}"
    return None
