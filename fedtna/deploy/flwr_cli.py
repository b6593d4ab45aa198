"""The ``flwr`` CLI and the environment every Flower executable of a deployment runs in.

``flwr run`` exits 0 even when the run later fails, so callers ask for the status
(``flwr ls --format json``) and read ``flwr log`` themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomli_w

from fedtna.deploy.errors import DeploymentError

FLOWER_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "GRPC_ENABLE_FORK_SUPPORT": "0",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
}


def venv_bin() -> Path:
    """The bin/ of this interpreter's environment: the daemons spawn Flower executables by name."""
    return Path(sys.executable).parent


def flower_env(flwr_home: str | Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a Flower daemon or CLI call: offline settings, own FLWR_HOME, venv on PATH."""
    env = dict(os.environ)
    env.update(FLOWER_ENV)
    env["FLWR_HOME"] = str(flwr_home)
    env["PATH"] = f"{venv_bin()}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def flower_executable(name: str) -> str:
    """Absolute path of a Flower executable of this environment."""
    found = shutil.which(name, path=f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        raise DeploymentError(f"{name} not found; install flwr into this environment ({venv_bin()})")
    return found


def write_connection_config(flwr_home: str | Path, name: str, address: str,
                            root_certificates: str | Path | None = None) -> Path:
    """``$FLWR_HOME/config.toml`` declaring the SuperLink connection ``name`` (its Control API)."""
    connection: dict[str, Any] = {"address": address}
    if root_certificates is None:
        connection["insecure"] = True
    else:
        connection["root-certificates"] = str(Path(root_certificates).resolve())
    path = Path(flwr_home) / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps({"superlink": {"default": name, name: connection}}))
    return path


def flwr_cli(args: Sequence[str], env: Mapping[str, str], timeout: float = 120.0,
             cwd: str | Path | None = None, prefix: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """Run ``flwr <args>`` and return the completed process (whatever its exit code).

    ``prefix`` goes before the command, e.g. ``ip netns exec <ns>`` to run it in a network namespace.
    """
    try:
        return subprocess.run([*prefix, flower_executable("flwr"), *args], env=dict(env), cwd=cwd,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as error:
        raise DeploymentError(f"`flwr {' '.join(args)}` did not answer within {timeout:.0f} s") from error


def _json_of(completed: subprocess.CompletedProcess, what: str) -> dict[str, Any]:
    """The JSON object a ``--format json`` call printed; raise unless it says ``success``."""
    text = completed.stdout.strip()
    start = text.find("{")
    try:
        payload = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and payload.get("success", False):
        return payload
    detail = payload.get("error-message") if isinstance(payload, dict) else None
    output = (completed.stdout + completed.stderr).strip()[-2000:]
    raise DeploymentError(f"{what} failed (exit {completed.returncode}): {detail or output}")


def submit_run(app_dir: str | Path, connection: str, run_config_toml: str | Path, env: Mapping[str, str],
               prefix: Sequence[str] = ()) -> int:
    """``flwr run <app_dir> <connection> --run-config <toml> --format json``; returns the run id."""
    completed = flwr_cli(["run", str(app_dir), connection, "--run-config", str(run_config_toml),
                          "--format", "json"], env, timeout=300, prefix=prefix)
    return int(_json_of(completed, "flwr run")["run-id"])


def run_status(run_id: int, connection: str, env: Mapping[str, str], prefix: Sequence[str] = ()) -> str:
    """The status text of a run, e.g. ``running`` or ``finished:completed``."""
    payload = _json_of(flwr_cli(["ls", connection, "--run-id", str(run_id), "--format", "json"], env,
                                prefix=prefix), "flwr ls")
    runs = payload.get("runs") or []
    if not runs:
        raise DeploymentError(f"flwr ls knows no run {run_id}")
    return str(runs[0]["status"])


def stop_run(run_id: int, connection: str, env: Mapping[str, str], prefix: Sequence[str] = ()) -> None:
    """``flwr stop <run_id>`` (best effort: the exit code is not checked)."""
    flwr_cli(["stop", str(run_id), connection], env, timeout=60, prefix=prefix)


def run_log_tail(run_id: int, connection: str, env: Mapping[str, str], lines: int = 40,
                 prefix: Sequence[str] = ()) -> str:
    """The last ``lines`` lines of ``flwr log <run_id> --show`` (best effort)."""
    try:
        completed = flwr_cli(["log", str(run_id), connection, "--show"], env, timeout=60, prefix=prefix)
    except DeploymentError as error:
        return str(error)
    text = (completed.stdout + completed.stderr).rstrip()
    return "\n".join(text.splitlines()[-lines:])


def register_supernode(public_key: str | Path, connection: str, env: Mapping[str, str],
                       prefix: Sequence[str] = ()) -> int:
    """``flwr supernode register <public_key> <connection> --format json``; returns the node id."""
    completed = flwr_cli(["supernode", "register", str(public_key), connection, "--format", "json"], env,
                         prefix=prefix)
    return int(_json_of(completed, f"flwr supernode register {public_key}")["node-id"])


def list_supernodes(connection: str, env: Mapping[str, str], prefix: Sequence[str] = ()) -> dict[int, str]:
    """``flwr supernode ls --format json``: node id -> status (registered, online, offline, ...)."""
    payload = _json_of(flwr_cli(["supernode", "ls", connection, "--format", "json"], env, prefix=prefix),
                       "flwr supernode ls")
    return {int(node["node-id"]): str(node["status"]) for node in payload.get("nodes") or []}
