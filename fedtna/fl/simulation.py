"""Run a fedtna experiment in Flower's simulation engine (Ray), in-process."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from fedtna.config import RunConfig
from fedtna.errors import ConfigError, FedtnaError

QUIET_ENVIRONMENT = {
    "RAY_DEDUP_LOGS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
    "GRPC_ENABLE_FORK_SUPPORT": "0",
    "TF_CPP_MIN_LOG_LEVEL": "3",
}


def backend_config(config: RunConfig) -> dict[str, Any]:
    """Ray resources: per-client CPUs and (fractional) GPUs; Ray's own size and log level."""
    simulation = config.simulation
    init_args: dict[str, Any] = {
        "logging_level": logging.INFO if config.verbose else logging.ERROR,
        "log_to_driver": config.verbose,
        "include_dashboard": False,
    }
    if simulation.num_cpus is not None:
        init_args["num_cpus"] = simulation.num_cpus
    if simulation.num_gpus is not None:
        init_args["num_gpus"] = simulation.num_gpus
    return {
        "client_resources": {"num_cpus": float(simulation.client_resources.num_cpus),
                             "num_gpus": float(simulation.client_resources.num_gpus)},
        "init_args": init_args,
    }


def check_actor_fits(config: RunConfig) -> None:
    """At least one client actor must fit the machine, else Flower's engine would wait forever."""
    import torch

    resources = config.simulation.client_resources
    cpus = config.simulation.num_cpus if config.simulation.num_cpus is not None else os.cpu_count() or 1
    if resources.num_cpus > cpus:
        raise ConfigError(f"simulation.client_resources.num_cpus={resources.num_cpus} is more than the {cpus} CPUs "
                          "Ray may use; no client actor would fit")
    gpus = config.simulation.num_gpus if config.simulation.num_gpus is not None else torch.cuda.device_count()
    if resources.num_gpus > 0 and gpus < 1:
        raise ConfigError(f"simulation.client_resources.num_gpus={resources.num_gpus} but Ray may use no GPU; "
                          "no client actor would fit")


def _quiet_loggers(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.ERROR
    logging.getLogger("flwr").setLevel(level)
    logging.getLogger("ray").setLevel(level)


def simulate(config: RunConfig) -> dict[str, Any]:
    """Start Ray, run the ServerApp and ClientApps, return the run summary."""
    check_actor_fits(config)
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    _quiet_loggers(config.verbose)
    from flwr.simulation import run_simulation

    from fedtna.fl.client_app import make_client_app
    from fedtna.fl.server_app import make_server_app

    _quiet_loggers(config.verbose)
    results: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        run_simulation(
            server_app=make_server_app(config, results),
            client_app=make_client_app(config),
            num_supernodes=config.num_clients,
            backend_config=backend_config(config),
            verbose_logging=config.verbose,
        )
    except FedtnaError:
        raise
    except Exception as error:  # Flower wraps ServerApp errors; surface ours as the one-line error
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
