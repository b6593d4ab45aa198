"""``python -m fedtna.lmc`` (or ``fedtna-lmc``): model fusion and linear mode connectivity."""

from __future__ import annotations

from fedtna.config import parse_lmc_config
from fedtna.config.entry import hydra_entry
from fedtna.fusion.cli import run_and_report

main = hydra_entry("lmc", parse_lmc_config, run_and_report)

if __name__ == "__main__":
    main()
