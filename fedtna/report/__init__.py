"""Reports of fedtna sweeps: grouped tables, paired comparisons against a baseline, curves, fusion barriers.

``python -m fedtna.report DIR ...`` (``fedtna-report``); ``build_report`` does the work, and
``callback.ReportCallback`` runs it at the end of every Hydra multirun.
"""
