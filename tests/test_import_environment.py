"""Importing fedtna's Flower apps leaves the process environment as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = """
import json, os
before = dict(os.environ)
import fedtna.fl, fedtna.fl.client_app, fedtna.fl.server_app, fedtna.fl.strategies, fedtna.fl.engines
after = dict(os.environ)
print(json.dumps({k: [before.get(k), after.get(k)] for k in set(before) | set(after) if before.get(k) != after.get(k)}))
"""


def test_importing_fedtna_fl_changes_no_environment_variable() -> None:
    env = {key: value for key, value in os.environ.items()
           if key not in ("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "GRPC_ENABLE_FORK_SUPPORT")}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True,
                            timeout=300)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {}
