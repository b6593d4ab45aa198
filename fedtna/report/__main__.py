"""``python -m fedtna.report``."""

from fedtna.report.cli import main

main()
