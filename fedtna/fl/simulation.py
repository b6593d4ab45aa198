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


def machine_cpus() -> int:
    """CPUs this process may run on: its affinity (taskset, a Slurm allocation's cpuset), capped by a
    container's CPU quota as Ray reads it."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on macOS
        cpus = os.cpu_count() or 1
    try:
        from ray._private.utils import get_num_cpus

        cpus = min(cpus, int(get_num_cpus(override_docker_cpu_warning=True)))
    except Exception:  # noqa: BLE001 - Ray's private helper is only a cap
        pass
    return max(1, cpus)


def _hydra_setting(path: str) -> Any:
    """A resolved value of the Hydra multirun job running this process (``launcher.n_jobs``, ...);
    None in a single run, outside Hydra (deployment, tests) or when the launcher has no such key."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
        from omegaconf import OmegaConf

        if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
            return None
        return OmegaConf.select(HydraConfig.get(), path, default=None)
    except Exception:  # noqa: BLE001 - no Hydra job: one job on the machine
        return None


def _launcher_is(name: str) -> bool:
    return name in str(_hydra_setting("launcher._target_") or "")


def jobs_per_machine(config: RunConfig) -> int:
    """How many fedtna jobs share this machine at once: ``simulation.jobs_per_machine``, else the joblib
    launcher's ``n_jobs`` (capped by the sweeper's batch: Optuna's ``n_jobs``, basic ``max_batch_size``),
    else 1 (the basic launcher runs jobs one after another)."""
    if config.simulation.jobs_per_machine is not None:
        return config.simulation.jobs_per_machine
    n_jobs = _hydra_setting("launcher.n_jobs") if _launcher_is("joblib") else None
    if not isinstance(n_jobs, int) or n_jobs == 0:
        return 1
    if n_jobs < 0:  # joblib: -1 = one job per CPU, -2 = all CPUs but one, ...
        import joblib

        n_jobs = max(1, joblib.cpu_count() + 1 + n_jobs)
    batch = _hydra_setting("sweeper.n_jobs")
    if batch is None:
        batch = _hydra_setting("sweeper.max_batch_size")
    if isinstance(batch, int) and batch >= 1:
        n_jobs = min(n_jobs, batch)
    return n_jobs


def ray_num_cpus(config: RunConfig) -> int:
    """The CPUs this job's Ray may use: ``simulation.num_cpus``; else this process's CPUs divided by an
    explicit ``simulation.jobs_per_machine``; else a submitit launcher's ``cpus_per_task`` (Slurm, local);
    else this process's CPUs divided by the joblib launcher's parallel jobs (1 for the basic launcher)."""
    simulation = config.simulation
    if simulation.num_cpus is not None:
        return simulation.num_cpus
    if simulation.jobs_per_machine is None and _launcher_is("submitit"):
        cpus_per_task = _hydra_setting("launcher.cpus_per_task")
        if isinstance(cpus_per_task, int) and cpus_per_task >= 1:
            return min(cpus_per_task, machine_cpus())
    return max(1, machine_cpus() // jobs_per_machine(config))


def backend_config(config: RunConfig) -> dict[str, Any]:
    """Ray resources: per-client CPUs and (fractional) GPUs; Ray's own size and log level.

    ``address="local"`` always starts this job's own Ray instance (own temp session, own ports), so
    concurrent jobs never attach to each other's Ray, to a ``ray start`` cluster or to ``RAY_ADDRESS``.
    """
    simulation = config.simulation
    init_args: dict[str, Any] = {
        "address": "local",
        "num_cpus": ray_num_cpus(config),
        "logging_level": logging.INFO if config.verbose else logging.ERROR,
        "log_to_driver": config.verbose,
        "include_dashboard": False,
    }
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
    cpus = ray_num_cpus(config)
    if resources.num_cpus > cpus:
        raise ConfigError(f"simulation.client_resources.num_cpus={resources.num_cpus} is more than the {cpus} CPUs "
                          f"Ray may use ({jobs_per_machine(config)} job(s) share this machine); no client actor "
                          "would fit")
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
    backend = backend_config(config)
    started = time.perf_counter()
    try:
        run_simulation(
            server_app=make_server_app(config, results, simulated_nodes=True),
            client_app=make_client_app(config),
            num_supernodes=config.num_clients,
            backend_config=backend,
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
    summary["ray_num_cpus"] = backend["init_args"]["num_cpus"]
    return summary


def _fedtna_cause(error: BaseException) -> FedtnaError | None:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, FedtnaError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
