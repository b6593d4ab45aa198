"""``python -m fedtna.report DIR [DIR ...] [--out OUT] [--baseline strategy=fedavg] [--select lr]`` (also
``fedtna-report``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fedtna.errors import FedtnaError

USAGE_ERROR_EXIT = 2


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedtna-report",
        description="Tables, paired comparisons and plots for every fedtna.run / fedtna.lmc run under the folders. "
                    "Writes report.md, report.csv, report.json and PNG plots.")
    parser.add_argument("directories", nargs="+", type=Path, metavar="DIR",
                        help="sweep or run folders (searched recursively)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the report (default: the first DIR)")
    parser.add_argument("--baseline", default=None, metavar="KEY=VALUE",
                        help="the baseline of the paired comparison, e.g. strategy=fedavg (the default when "
                             "there are fedavg runs) or 'strategy=fedprox strategy.proximal_mu=0.01'")
    parser.add_argument("--method-keys", default="", metavar="KEY[,KEY...]",
                        help="settings that belong to the method and are compared within a panel, e.g. lr: "
                             "FedAvg at lr 0.025 against FedPNU at lr 0.05, paired by seed")
    parser.add_argument("--select", action="append", default=[], metavar="KEY[,KEY...]",
                        help="swept settings chosen per method on validation data, e.g. --select lr: each method "
                             "(every setting but these and the seed) at the value with the best mean validation "
                             "last-5 accuracy over seeds, then compared on test accuracy; repeat it or separate "
                             "keys by commas to choose several together (--select lr --select strategy.proximal_mu)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Exit code 0, or 2 with one ``error: ...`` line for runs that cannot be reported."""
    args = parser().parse_args(argv)
    from fedtna.report.build import build_report
    from fedtna.report.console import print_report

    try:
        method_keys = [key.strip() for key in args.method_keys.split(",") if key.strip()]
        select = [key.strip() for item in args.select for key in item.split(",") if key.strip()]
        report = build_report(args.directories, args.out, args.baseline, plots=not args.no_plots,
                              method_keys=method_keys, select=select)
    except FedtnaError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(USAGE_ERROR_EXIT)
    print_report(report)
    return 0


if __name__ == "__main__":
    main()
