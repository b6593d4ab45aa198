"""Read every run under the folders, analyse, plot and write the report files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from fedtna.report.failed import FailedJob, failed_jobs
from fedtna.report.fl import FlAnalysis, analyse_fl
from fedtna.report.fusion import FusionAnalysis, analyse_fusion
from fedtna.report.runs import FoundRuns, ReportError, find_runs


@dataclass(frozen=True)
class Report:
    """What was read, what was found, and where the files are."""

    out: Path
    found: FoundRuns
    fl: FlAnalysis | None
    fusion: FusionAnalysis | None
    files: dict[str, Path]  # "md", "csv", "json"
    plots: list[Path]

    @property
    def failed(self) -> list[FailedJob]:
        """Runs whose summary.json says failed."""
        return failed_jobs(self.found.fl)


def _remove_old_plots(out: Path) -> None:
    """Plots a previous report in ``out`` listed (panel names may have changed since)."""
    try:
        previous = json.loads((out / "report.json").read_text()).get("plots", [])
    except (OSError, ValueError, AttributeError):
        return
    for name in previous:
        path = Path(name)
        if path.parent == out and path.suffix == ".png" and path.name.startswith(("curves", "fusion", "ratio-sweep")):
            path.unlink(missing_ok=True)


def analyse(found: FoundRuns, baseline: str | None, method_keys: Sequence[str], select: Sequence[str]) -> FlAnalysis:
    """The federated analysis; with ``select``, of each method at its values chosen on validation accuracy."""
    try:
        if not select:
            return analyse_fl(found.fl, baseline, method_keys)
        from fedtna.report.selection import select as choose

        selection = choose(found.fl, select)
        fl = analyse_fl(selection.runs, baseline, (*method_keys, *selection.keys))
        return replace(fl, selection=selection)
    except ValueError as error:  # a malformed --baseline
        raise ReportError(str(error)) from None


def build_report(directories: Sequence[Path | str], out: Path | str | None = None, baseline: str | None = None,
                 plots: bool = True, method_keys: Sequence[str] = (), select: Sequence[str] = ()) -> Report:
    """The whole report; ``out`` defaults to the first folder. Raises ReportError for what cannot be reported.
    ``select``: keys whose values each method gets at its best validation accuracy (``--select``)."""
    folders = [Path(directory) for directory in directories]
    if not folders:
        raise ReportError("no folder given")
    found = find_runs(folders)
    if not found.fl and not found.lmc:
        raise ReportError("no runs (config.json + metrics.jsonl, or lmc.json) under "
                          + ", ".join(str(directory) for directory in folders))
    if select and not found.fl:
        raise ReportError("--select needs federated runs (config.json + metrics.jsonl); none found")
    fl = analyse(found, baseline, method_keys, select) if found.fl else None
    fusion = analyse_fusion(found.lmc) if found.lmc else None
    out_dir = Path(out) if out is not None else folders[0]
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_old_plots(out_dir)
    drawn: dict[str, list[Path]] = {}
    if plots and fl is not None and fl.groups:
        from fedtna.report.curves import plot_curves

        drawn["curves"] = plot_curves(fl, out_dir)
        from fedtna.report.ratio_sweep import plot_ratio_sweeps

        drawn["ratio_sweep"] = plot_ratio_sweeps(fl, out_dir)
    if plots and fusion is not None:
        from fedtna.report.fusion_plot import plot_fusion

        drawn["fusion"] = plot_fusion(fusion, out_dir)
    from fedtna.report.output import write_outputs

    files = write_outputs(found, folders, fl, fusion, drawn, out_dir)
    return Report(out_dir, found, fl, fusion, files, [path for paths in drawn.values() for path in paths])
