"""Federated learning on Flower: round plan, strategies, schedules, the apps, simulation, results."""

import os as _os

# `flwr run .` imports this package before it starts Flower's local SuperLink, which inherits this
# environment: use the installed fedtna instead of a fresh per-run `uv sync`, and keep gRPC's fork
# handlers from breaking Ray's start-up. A value the user exported wins.
_os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
