"""Write report.md, report.csv and report.json."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedtna.report.failed import failed_jobs, failed_jobs_table, failed_record
from fedtna.report.fl import FlAnalysis, Group
from fedtna.report.fusion import FusionAnalysis, headline_table, modes_table, records, soups_table, sweep_tables
from fedtna.report.ratio_sweep import ratio_tables, sweep_panels
from fedtna.report.runs import FoundRuns
from fedtna.report.selection import Selection
from fedtna.report.settings import FL_CONTEXT, LMC_CONTEXT, MISSING
from fedtna.report.stats import MeanStd
from fedtna.report.views import (
    drift_tables,
    excluded_table,
    group_tables,
    method_text,
    selection_table,
    settings_sentence,
)

FUSION_TEXT = ("Each lmc.json holds, per mode, K models trained on the same seeds, every pair interpolated "
               "on α ∈ [0, 1] and all K averaged. Accuracy barrier = max over α of [(1−α)Acc(A) + αAcc(B) − "
               "Acc(θα)] (points; relative: divided by the interpolated endpoint accuracy); loss barrier = max "
               "over α of [Loss(θα) − ((1−α)Loss(A) + αLoss(B))]; both averaged over pairs, then mean ± std over "
               "seeds. Reduction = 1 − mean(mode) / mean(vanilla) (– when vanilla's barrier is below 0.1 points "
               "or 0.001 loss). A (setting, seed) found twice counts once. A diverged (null) value is counted, "
               "never averaged.")


def _stats(stats: MeanStd | None) -> dict[str, Any] | None:
    return None if stats is None else {"mean": stats.mean, "std": stats.std, "n": stats.n}


def _chosen(analysis: FlAnalysis, group: Group) -> dict[str, Any] | None:
    """With --select: the values of the selected keys chosen for the group's method."""
    choice = analysis.selection.choice_of(group.runs[0]) if analysis.selection is not None else None
    if choice is None:
        return None
    return {key: value for key, value in zip(choice.keys, choice.chosen.values, strict=True) if value != MISSING}


def selection_record(selection: Selection) -> dict[str, Any]:
    """Every method's candidates with their validation accuracy, the chosen values, and the warnings: choices
    at the edge of their grid or without every seed, values left out for lack of seeds."""
    return {"keys": list(selection.keys), "warnings": selection.warnings, "methods": [{
        "method": method.label, "chosen": method.values_text(),
        "candidates": [{"values": method.values_text(c), "seeds": list(c.seeds), "eligible": c.eligible,
                        "note": c.note, "val_last5_mean": _stats(c.validation)} for c in method.candidates],
        "edges": [{"key": edge.key, "value": edge.value, "grid": list(edge.grid), "side": edge.side}
                  for edge in method.edges]} for method in selection.methods]}


def group_record(analysis: FlAnalysis, group: Group) -> dict[str, Any]:
    comparison = analysis.comparison_of(group)
    result = comparison.result if comparison else None
    return {
        "label": group.label, "panel": group.panel, "method": group.method, "chosen": _chosen(analysis, group),
        "settings": {key: value for key, value in group.settings.items() if value != MISSING},
        "is_baseline": group.is_baseline, "seeds": list(group.seeds), "runs": [str(run.path) for run in group.runs],
        "final_test_accuracy": _stats(group.final), "best_test_accuracy": _stats(group.best),
        "last5_mean_test_accuracy": _stats(group.last5), "rounds": group.rounds,
        "wall_seconds": _stats(group.wall),
        "comparison": None if comparison is None else {
            "baseline": comparison.baseline.label if comparison.baseline else None, "note": comparison.note,
            "common_seeds": list(result.seeds) if result else [],
            "differences": list(result.differences) if result else [],
            "mean_difference": result.mean if result else None, "ci95_low": result.low if result else None,
            "ci95_high": result.high if result else None, "wins": result.wins if result else None},
    }


def _csv_row(record: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"kind": "fl", "panel": record["panel"], "label": record["label"],
                           "is_baseline": record["is_baseline"], "seeds": len(record["seeds"])}
    if record["chosen"] is not None:
        row["chosen"] = " ".join(f"{key}={value}" for key, value in record["chosen"].items())
    for key in ("final_test_accuracy", "best_test_accuracy", "last5_mean_test_accuracy", "wall_seconds"):
        stats = record[key] or {}
        row[f"{key}_mean"], row[f"{key}_std"] = stats.get("mean"), stats.get("std")
    row["rounds"] = record["rounds"]
    comparison = record["comparison"] or {}
    row.update({"baseline": comparison.get("baseline"), "diff_last5_mean": comparison.get("mean_difference"),
                "diff_ci95_low": comparison.get("ci95_low"), "diff_ci95_high": comparison.get("ci95_high"),
                "wins": comparison.get("wins"), "common_seeds": len(comparison.get("common_seeds", [])) or None,
                "note": comparison.get("note")})
    row.update({key: json.dumps(value) if isinstance(value, list | tuple) else value
                for key, value in record["settings"].items()})  # a key a run does not have stays empty
    return row


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or ["kind"])
        writer.writeheader()
        writer.writerows(rows)


def _link(path: Path, out: Path) -> str:
    return os.path.relpath(path, out)


def markdown(found: FoundRuns, directories: Sequence[Path], fl: FlAnalysis | None, fusion: FusionAnalysis | None,
             plots: dict[str, list[Path]], out: Path) -> str:
    complete = sum(run.problem is None for run in found.fl)
    failed = failed_jobs(found.fl)
    state = f"{complete} complete" + (f", {len(failed)} failed" if failed else "")
    counts = ([f"{len(found.fl)} federated run{'s' * (len(found.fl) != 1)} ({state})"]
              if found.fl else []) \
        + ([f"{len(found.lmc)} fusion run{'s' * (len(found.lmc) != 1)} (lmc.json)"] if found.lmc else [])
    lines = ["# fedtna report", "", f"Read from {', '.join(f'`{d}`' for d in directories)}: "
             f"{', '.join(counts)}. Accuracies in %.", ""]
    failed_table = failed_jobs_table(failed, out)
    if failed_table is not None:
        note = (f"{len(failed)} job{'s' * (len(failed) != 1)} failed; left out of every statistic below "
                "(their finished rounds stay in their metrics.jsonl).")
        lines += ["## Failed jobs", "", note, "", failed_table.markdown(), ""]
    if fl is not None:
        config = fl.groups[0].runs[0].config if fl.groups else None
        shared_by = "all" if fl.selection is None else "the runs at their chosen values"
        lines += ["## Federated runs", "",
                  settings_sentence(fl.keys, fl.named, config, FL_CONTEXT, fl.varying, shared_by), ""]
        if fl.selection is not None:
            lines += ["### Selection on validation data", "", selection_table(fl.selection).markdown(), ""]
            lines += [f"**Warning:** {warning}.  " for warning in fl.selection.warnings]
            lines += [""] if fl.selection.warnings else []
        curves = dict(zip(fl.panels, plots.get("curves", []), strict=False))  # no plots: no entries
        drift = drift_tables(fl)
        sweeps = ratio_tables(fl)
        sweep_plots = dict(zip(sweep_panels(fl), plots.get("ratio_sweep", []), strict=False))
        for table, panel in zip(group_tables(fl), fl.panels, strict=True):
            lines += [f"### {panel or 'All runs'}", "", table.markdown(), ""]
            notes = [f"{c.group.method or c.group.label}: {c.note}" for c in fl.comparisons
                     if c.note and c.group.panel == panel]
            lines += [f"*{note}*  " for note in notes] + ([""] if notes else [])
            if panel in drift:
                lines += [f"#### {drift[panel].title}", "", drift[panel].markdown(), ""]
            if panel in curves:
                lines += [f"![test accuracy and loss per round]({_link(curves[panel], out)})", ""]
            if panel in sweeps:
                lines += [f"#### {sweeps[panel].title}", "", sweeps[panel].markdown(), ""]
                if panel in sweep_plots:
                    lines += [f"![accuracy against the mask ratio]({_link(sweep_plots[panel], out)})", ""]
        lines += ["### Method", "", method_text(fl), ""]
        excluded = excluded_table(fl)
        lines += (["### Incomplete or failed runs (excluded)", "", excluded.markdown(), ""] if excluded
                  else [] if failed else ["All runs are complete.", ""])
    if fusion is not None:
        config = fusion.settings[0].runs[0].config
        lines += ["## Model fusion (lmc.json)", "",
                  settings_sentence(fusion.keys, fusion.named, config, LMC_CONTEXT), "", FUSION_TEXT, ""]
        headline = headline_table(fusion)
        if headline.rows:
            lines += ["### Vanilla vs TNA-PFN", "", headline.markdown(), ""]
        for table in sweep_tables(fusion):
            lines += [f"### {table.title}", "", table.markdown(), ""]
        soups = soups_table(fusion)
        if soups is not None:
            lines += ["### Model soups", "", soups.markdown(), ""]
        lines += ["### Every mode", "", modes_table(fusion).markdown(), ""]
        for path in plots.get("fusion", []):
            lines += [f"![interpolation curves]({_link(path, out)})", ""]
    if found.unreadable:
        lines += ["## Unreadable run folders", ""] + [f"- `{item.path}`: {item.problem}" for item in found.unreadable]
    return "\n".join(lines).rstrip() + "\n"


def write_outputs(found: FoundRuns, directories: Sequence[Path], fl: FlAnalysis | None,
                  fusion: FusionAnalysis | None, plots: dict[str, list[Path]], out: Path) -> dict[str, Path]:
    """report.md, report.csv, report.json in ``out``; returns their paths by suffix."""
    groups = [group_record(fl, group) for group in fl.groups] if fl else []
    fusion_records = records(fusion) if fusion else []
    paths = {suffix: out / f"report.{suffix}" for suffix in ("md", "csv", "json")}
    paths["md"].write_text(markdown(found, directories, fl, fusion, plots, out))
    write_csv(paths["csv"], [_csv_row(record) for record in groups] + fusion_records)
    document = {
        "directories": [str(d) for d in directories],
        "fl": None if fl is None else {
            "grouping_keys": fl.keys, "named_keys": fl.named, "baseline": fl.baseline, "method": method_text(fl),
            "selection": selection_record(fl.selection) if fl.selection is not None else None, "groups": groups,
            "excluded": [{"path": str(e.path), "label": e.label, "reason": e.reason} for e in fl.excluded]},
        "failed": [failed_record(job) for job in failed_jobs(found.fl)],
        "fusion": None if fusion is None else {
            "records": fusion_records,
            "sweeps": [{"setting": name, "mask_ratios": [s.ratio for s in settings]}
                       for name, settings in fusion.sweeps]},
        "unreadable": [{"path": str(item.path), "problem": item.problem} for item in found.unreadable],
        "plots": [str(path) for paths_ in plots.values() for path in paths_],
    }
    paths["json"].write_text(json.dumps(document, indent=2, default=str) + "\n")
    return paths
