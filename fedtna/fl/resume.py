"""``resume=<run dir>`` and ``resume=auto``: continue a killed run after its last checkpointed round.

A resumed run takes every value from the saved ``config.json``; a command-line override that
would change the result is refused with one line, so the continued run is the run that was
started. ``auto`` (for sweeps rerun into the same ``hydra.sweep.dir``) skips finished jobs and
continues the others from their own folder. A run that diverged is not continued (it would diverge
again): ``auto`` skips it, and ``rerun_diverged=true`` runs it again from round 1 in its folder.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from fedtna.config import RunConfig, parse_run_config, to_plain
from fedtna.errors import ConfigError
from fedtna.fl.checkpoint import CHECKPOINT_FILE
from fedtna.fl.failures import DIVERGED, read_summary

AUTO = "auto"
# Keys that change how a run is watched or scheduled, never its numbers.
RESULT_NEUTRAL_KEYS = ("resume", "progress", "print_config", "verbose", "round_timeout", "checkpoint_every",
                       "wandb", "simulation.num_cpus", "simulation.num_gpus", "simulation.jobs_per_machine",
                       "simulation.client_resources", "output_dir", "hydra", "rerun_diverged")
GROUP_KEYS = ("strategy", "dataset", "partition", "model", "simulation")


def finished_summary(run_dir: Path) -> dict[str, Any] | None:
    """The summary of a run that completed all its rounds, else None."""
    summary = read_summary(run_dir)
    return summary if summary is not None and summary.get("status") == "completed" else None


def diverged_summary(run_dir: Path) -> dict[str, Any] | None:
    """The summary of a run that failed by divergence, else None."""
    summary = read_summary(run_dir)
    return summary if summary is not None and summary.get("failure") == DIVERGED else None


def _lookup(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def changed_keys(overrides: list[str], requested: dict[str, Any], saved: dict[str, Any]) -> list[str]:
    """Overridden keys whose requested value differs from the saved run's (result-neutral keys aside)."""
    changed = []
    for override in overrides:
        key = _override_key(override)
        if key.startswith(RESULT_NEUTRAL_KEYS):
            continue
        if key == "experiment" or key.startswith("experiment/"):
            keys = sorted(set(requested) | set(saved))
            changed += [k for k in keys if not k.startswith(RESULT_NEUTRAL_KEYS) and requested.get(k) != saved.get(k)]
        elif _lookup(requested, key) != _lookup(saved, key):
            changed.append(key)
    return sorted(set(changed))


def resolve_resume(config: RunConfig, overrides: list[str]) -> tuple[RunConfig, dict[str, Any] | None]:
    """(the config to run, the summary when there is nothing left to run)."""
    if config.resume is None:
        return config, None
    run_dir = Path(config.output_dir) if config.resume == AUTO else Path(config.resume).expanduser().resolve()
    if config.resume == AUTO and not (run_dir / "config.json").is_file():
        return config, None  # nothing of this job ran yet: a fresh start
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"resume={config.resume!r}: {run_dir} has no config.json; is it a fedtna run folder?")
    saved = json.loads((run_dir / "config.json").read_text())
    saved.setdefault("validation_fraction", 0.0)  # runs saved before the key existed held nothing out
    changed = changed_keys(overrides, to_plain(config), saved)
    if changed:
        raise ConfigError(f"resume={config.resume!r}: overrides {changed} differ from the saved run's config in "
                          f"{run_dir}; a resumed run keeps its config (drop them or start a new run)")
    saved.update({"resume": config.resume, "output_dir": str(run_dir), "progress": config.progress,
                  "print_config": config.print_config, "verbose": config.verbose,
                  "rerun_diverged": config.rerun_diverged})
    resumed = replace(parse_run_config(saved), resume=config.resume, output_dir=str(run_dir))
    summary = finished_summary(run_dir)
    if summary is not None:
        return resumed, summary
    diverged = diverged_summary(run_dir)
    if diverged is not None:
        return _diverged(resumed, run_dir, diverged)
    if config.resume != AUTO and not (run_dir / CHECKPOINT_FILE).is_file():
        raise ConfigError(f"resume={config.resume!r}: {run_dir} has no {CHECKPOINT_FILE} (no round finished yet); "
                          "start it again instead")
    return resumed, None


def _diverged(resumed: RunConfig, run_dir: Path, summary: dict[str, Any]) -> tuple[RunConfig, dict[str, Any] | None]:
    """A diverged run: skipped by ``auto``, refused by ``resume=<dir>``, or (``rerun_diverged``) run again
    from round 1 in its folder (its old checkpoint removed, so nothing of the diverged attempt is continued)."""
    if resumed.rerun_diverged:
        (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
        return replace(resumed, resume=None), None
    if resumed.resume == AUTO:
        return resumed, summary
    raise ConfigError(f"resume={resumed.resume!r}: {run_dir} diverged ({summary.get('reason', 'no reason recorded')}); "
                      "continuing it would diverge again. rerun_diverged=true runs it again from round 1")
