"""Run a fedtna experiment in Flower's simulation engine (Ray), in-process."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

from fedtna.errors import FedtnaError

QUIET_ENVIRONMENT = {
    "RAY_DEDUP_LOGS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
    "GRPC_ENABLE_FORK_SUPPORT": "0",
    "TF_CPP_MIN_LOG_LEVEL": "3",
}


def backend_config(run_config: Mapping[str, Any]) -> dict[str, Any]:
    """Ray resources: per-client CPUs and (fractional) GPUs; Ray's own size and log level."""
    simulation = run_config["simulation"]
    resources = simulation["client_resources"]
    init_args: dict[str, Any] = {
        "logging_level": logging.INFO if run_config.get("verbose") else logging.ERROR,
        "log_to_driver": bool(run_config.get("verbose")),
        "include_dashboard": False,
    }
    if simulation.get("num_cpus") is not None:
        init_args["num_cpus"] = int(simulation["num_cpus"])
    if simulation.get("num_gpus") is not None:
        init_args["num_gpus"] = int(simulation["num_gpus"])
    return {
        "client_resources": {"num_cpus": float(resources["num_cpus"]), "num_gpus": float(resources["num_gpus"])},
        "init_args": init_args,
    }


def _quiet_loggers(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.ERROR
    logging.getLogger("flwr").setLevel(level)
    logging.getLogger("ray").setLevel(level)


def simulate(run_config: Mapping[str, Any]) -> dict[str, Any]:
    """Start Ray, run the ServerApp and ClientApps, return the run summary."""
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    verbose = bool(run_config.get("verbose"))
    _quiet_loggers(verbose)
    from flwr.simulation import run_simulation

    from fedtna.clients.client_app import make_client_app
    from fedtna.server_app import make_server_app

    _quiet_loggers(verbose)
    results: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        run_simulation(
            server_app=make_server_app(run_config, results),
            client_app=make_client_app(run_config),
            num_supernodes=int(run_config["num_clients"]),
            backend_config=backend_config(run_config),
            verbose_logging=verbose,
        )
    except FedtnaError:
        raise
    except Exception as error:  # Flower wraps ServerApp errors; a stuck engine never returns
        if "ActorPool is empty" in str(error):
            print("error: no Ray actor fits simulation.client_resources on this machine", file=sys.stderr)
            os._exit(1)
        cause = _fedtna_cause(error)
        if cause is not None:
            raise cause from None
        raise
    if "summary" not in results:
        raise FedtnaError("the simulation ended without a result; rerun with verbose=true to see why")
    summary = results["summary"]
    summary["simulation_wall_seconds"] = round(time.perf_counter() - started, 3)
    return summary


def _fedtna_cause(error: BaseException) -> FedtnaError | None:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, FedtnaError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
