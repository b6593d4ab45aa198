"""The report's Failed jobs: runs whose summary.json says failed (diverged, crashed), why, how far they got.

Like every incomplete run they are left out of every statistic: a setting's mean, std and paired
comparison use its completed seeds only, and a setting none of whose seeds completed has no row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from fedtna.report.runs import FlRun
from fedtna.report.table import TextTable

# Overrides that say how a job was (re)started, not which job it is (conf/config.yaml leaves them out of
# the job folder's name too); a rerun with resume=auto rewrites .hydra/overrides.yaml with them.
RESTART_KEYS = ("resume", "rerun_diverged")


@dataclass(frozen=True)
class FailedJob:
    path: Path
    overrides: str  # the job's Hydra overrides ("" outside Hydra)
    reason: str
    completed_rounds: int | None
    num_rounds: Any


def job_overrides(folder: Path) -> str:
    """The overrides Hydra saved in the job's ``.hydra/overrides.yaml``, space-separated (restart keys left out)."""
    try:
        values = OmegaConf.to_container(OmegaConf.load(folder / ".hydra" / "overrides.yaml"))
    except Exception:  # noqa: BLE001 - missing or unreadable: the folder name still says it
        return ""
    if not isinstance(values, list):
        return ""
    return " ".join(str(value) for value in values if str(value).split("=", 1)[0].lstrip("+~") not in RESTART_KEYS)


def failed_jobs(runs: Sequence[FlRun]) -> list[FailedJob]:
    """Every run whose summary.json has ``status: failed``, in folder order."""
    jobs = []
    for run in sorted((run for run in runs if run.failed), key=lambda run: str(run.path)):
        summary = run.summary or {}
        completed = summary.get("completed_rounds", summary.get("rounds"))
        jobs.append(FailedJob(run.path, job_overrides(run.path), str(summary.get("reason") or "no reason recorded"),
                              completed if isinstance(completed, int) else None, run.num_rounds))
    return jobs


def failed_jobs_table(jobs: Sequence[FailedJob], root: Path | None = None) -> TextTable | None:
    """One row per failed job; folders inside ``root`` (the report's folder) are named relative to it."""
    if not jobs:
        return None
    table = TextTable("Failed jobs (not averaged)", ["job folder", "overrides", "reason", "rounds completed"])
    for job in jobs:
        folder = job.path.relative_to(root) if root is not None and job.path.is_relative_to(root) else job.path
        rounds = "–" if job.completed_rounds is None else f"{job.completed_rounds} of {job.num_rounds}"
        table.rows.append([str(folder), job.overrides or "–", job.reason, rounds])
    return table


def failed_record(job: FailedJob) -> dict[str, Any]:
    return {"path": str(job.path), "overrides": job.overrides, "reason": job.reason,
            "completed_rounds": job.completed_rounds, "num_rounds": job.num_rounds}
