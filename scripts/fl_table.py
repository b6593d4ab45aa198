"""Superseded by ``python -m fedtna.report DIR [DIR ...]`` (also ``fedtna-report``); kept as a shim."""
from fedtna.report.cli import main
main()
