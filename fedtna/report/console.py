"""Print a report's tables with rich, then where the report is."""

from __future__ import annotations

from typing import TextIO

from fedtna.report.build import Report
from fedtna.report.failed import failed_jobs_table
from fedtna.report.fusion import headline_table, modes_table, soups_table, sweep_tables
from fedtna.report.ratio_sweep import ratio_tables
from fedtna.report.views import excluded_table, group_tables, selection_table


def print_report(report: Report, file: TextIO | None = None) -> None:
    from rich.console import Console

    console = Console(file=file, soft_wrap=False)
    if not console.is_terminal:  # logs and pipes: do not squeeze the tables into 80 columns
        console = Console(file=file, width=170)
    if report.fl is not None:
        if report.fl.selection is not None:
            console.print(selection_table(report.fl.selection).rich())
        for table in [*group_tables(report.fl), *ratio_tables(report.fl).values()]:
            console.print(table.rich())
        excluded = excluded_table(report.fl)
        if excluded is not None:
            console.print(excluded.rich())
    if report.fusion is not None:
        headline = headline_table(report.fusion)
        tables = ([headline] if headline.rows else [modes_table(report.fusion)]) + sweep_tables(report.fusion)
        tables += [table for table in [soups_table(report.fusion)] if table is not None]
        for table in tables:
            console.print(table.rich())
    failed = failed_jobs_table(report.failed, report.out)
    if failed is not None:
        console.print(failed.rich())
    if report.fl is not None and report.fl.selection is not None:
        for warning in report.fl.selection.warnings:
            console.print(f"warning: {warning}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"report: {report.files['md']}", soft_wrap=True, highlight=False)
