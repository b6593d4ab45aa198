"""The Ray engine: Flower's simulation engine (``run_simulation``), for many GPUs and Ray clusters."""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, cast

from fedtna.config import RunConfig
from fedtna.errors import ConfigError, FedtnaError
from fedtna.fl.engines import register

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
    container's CPU quota (cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), as Ray counts them."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on macOS
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, int(quota))
    return max(1, cpus)


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The container's CPU quota in CPUs (None: no quota or no cgroup). Ray has no public API for it."""
    try:
        if (root / "cpu.max").exists():
            quota, period = (root / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        return quota_us / int((root / "cpu" / "cpu.cfs_period_us").read_text()) if quota_us > 0 else None
    except (OSError, ValueError):
        return None


def _hydra_setting(path: str) -> Any:
    """A resolved value of the Hydra multirun job running this process (``launcher.n_jobs``, ...);
    None in a single run, outside Hydra (deployment, tests) or when the launcher has no such key."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
        from omegaconf import DictConfig, OmegaConf

        if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
            return None
        hydra = cast(DictConfig, HydraConfig.get())  # typed as the HydraConf dataclass, a DictConfig at run time
        return OmegaConf.select(hydra, path, default=None)
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
    ``simulation.ray_address`` joins that running cluster instead; ``ray.init`` then refuses ``num_cpus``,
    ``num_gpus``, ``resources``, ``object_store_memory`` and ``_system_config`` (each node's ``ray start``
    sets them), and ignores ``include_dashboard``, so only the address and the log settings are passed.
    """
    simulation = config.simulation
    client_resources = {"num_cpus": float(simulation.client_resources.num_cpus),
                        "num_gpus": float(simulation.client_resources.num_gpus)}
    if simulation.ray_address is not None:
        return {"client_resources": client_resources,
                "init_args": {"address": simulation.ray_address,
                              "logging_level": logging.INFO if config.verbose else logging.ERROR,
                              "log_to_driver": config.verbose}}
    init_args: dict[str, Any] = {
        "address": "local",
        "num_cpus": ray_num_cpus(config),
        "logging_level": logging.INFO if config.verbose else logging.ERROR,
        "log_to_driver": config.verbose,
        "include_dashboard": False,
    }
    if simulation.num_gpus is not None:
        init_args["num_gpus"] = simulation.num_gpus
    return {"client_resources": client_resources, "init_args": init_args}


def check_actor_fits(config: RunConfig) -> None:
    """At least one client actor must fit the machine, else Flower's engine would wait forever.

    With ``simulation.ray_address`` the cluster is checked once joined (:func:`check_cluster_fits`).
    """
    import torch

    if config.simulation.ray_address is not None:
        for key in ("num_cpus", "num_gpus"):
            if getattr(config.simulation, key) is not None:
                raise ConfigError(f"simulation.{key}={getattr(config.simulation, key)} cannot be combined with "
                                  f"simulation.ray_address={config.simulation.ray_address}: a cluster's size is set "
                                  f"by `ray start --{key.replace('_', '-')}=N` on each node; leave it null")
        return
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


def _flower_pythonpath() -> str:
    """``PYTHONPATH`` as Flower's Ray backend sets it: this process's ``sys.path``, then the inherited value."""
    entries = list(sys.path)
    entries += [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                if entry and entry not in entries]
    return os.pathsep.join(entries)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """One TCP connect to the head's GCS port: ``ray.init`` would retry an address nobody serves for minutes."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    dialled = host
    if host in ("127.0.0.1", "::1", "localhost"):
        try:  # ray.init resolves a local host to this machine's address; probe what it will dial
            from ray.util import get_node_ip_address

            dialled = get_node_ip_address()
        except Exception:  # noqa: BLE001 - only refines the probe
            dialled = host
    try:
        with socket.create_connection((dialled, int(port)), timeout=timeout):
            pass
    except OSError as error:
        via = (f" (Ray dials {dialled}:{port} for {host}; export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 if the head "
               "was started with it)") if dialled != host else ""
        raise ConfigError(f"simulation.ray_address={address}: no Ray head answers there{via}: "
                          f"{error.strerror or error}; start one with `ray start --head --port={port}` "
                          "(docs/cluster.md)") from None


def check_cluster_fits(config: RunConfig) -> dict[str, Any]:
    """After joining a cluster: at least one node must fit one client; returns the cluster's size for the summary."""
    import ray

    resources = config.simulation.client_resources
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive") and node.get("Resources")]
    actors = 0
    for node in nodes:  # as Flower sizes its actor pool: per node
        fit = int(node.get("CPU", 0) / resources.num_cpus)
        if resources.num_gpus > 0:
            fit = min(fit, int(node.get("GPU", 0) / resources.num_gpus))
        actors += fit
    if actors == 0:
        sizes = ", ".join(f"{node.get('CPU', 0):g} CPU/{node.get('GPU', 0):g} GPU" for node in nodes) or "none"
        raise ConfigError(f"simulation.ray_address={config.simulation.ray_address}: no node of the cluster fits one "
                          f"client (simulation.client_resources: {resources.num_cpus:g} CPU, {resources.num_gpus:g} "
                          f"GPU; nodes: {sizes}); no client actor would fit")
    return {"ray_address": config.simulation.ray_address, "ray_nodes": len(nodes),
            "ray_num_cpus": int(sum(node.get("CPU", 0) for node in nodes)),
            "ray_num_gpus": int(sum(node.get("GPU", 0) for node in nodes)), "ray_client_actors": actors}


def start_ray(config: RunConfig, backend: dict[str, Any]) -> dict[str, Any]:
    """Start this run's Ray, or join ``simulation.ray_address``, before Flower's engine (which then keeps it).

    Flower's backend calls ``ray.init`` only when Ray is not up; it would add
    ``runtime_env={"env_vars": {"PYTHONPATH": ...}}``. Ray prestarts one idle worker per CPU without a
    runtime env, and a job with one cannot use them, so every client actor started a fresh worker.
    Here the private Ray gets ``PYTHONPATH`` from this process's environment, as Flower also sets it,
    and the actors take the prestarted workers (benchmarks/startup.py: half the worker processes, about
    1 s less per tiny run on 2 busy CPUs).

    A joined cluster's workers run the Python of each node's ``ray start``, so fedtna must be installed
    there; they get this run's quiet-environment variables, not this machine's ``PYTHONPATH``. Flower's
    ``ray.shutdown()`` at the end only disconnects this driver: the cluster keeps running.
    Returns the Ray facts for the summary.
    """
    import ray

    init_args = dict(backend["init_args"])
    if config.simulation.ray_address is None:
        os.environ["PYTHONPATH"] = _flower_pythonpath()
        ray.init(**init_args)
        return {"ray_num_cpus": init_args["num_cpus"]}
    _check_reachable(config.simulation.ray_address)
    ray.init(runtime_env={"env_vars": {key: os.environ[key] for key in QUIET_ENVIRONMENT if key in os.environ}},
             **init_args)
    try:
        return check_cluster_fits(config)
    except BaseException:
        ray.shutdown()
        raise


def _stop_ray() -> None:
    """Flower's engine shuts Ray down at its end; after an early error it may not have. A joined cluster
    only loses this driver (and its actors)."""
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    except Exception:  # noqa: BLE001 - cleanup must not hide the run's own error
        pass


def _quiet_loggers(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.ERROR
    logging.getLogger("flwr").setLevel(level)
    logging.getLogger("ray").setLevel(level)


@register("ray")
def simulate_on_ray(config: RunConfig) -> dict[str, Any]:
    """Start Ray, run the ServerApp and ClientApps, return the run summary."""
    for key, value in QUIET_ENVIRONMENT.items():  # before Ray is imported (machine_cpus reads Ray's CPU count)
        os.environ.setdefault(key, value)
    check_actor_fits(config)
    _quiet_loggers(config.verbose)
    from flwr.simulation import run_simulation

    from fedtna.fl.client_app import make_client_app
    from fedtna.fl.server_app import make_server_app

    _quiet_loggers(config.verbose)
    results: dict[str, Any] = {}
    backend = backend_config(config)
    started = time.perf_counter()
    try:
        ray_facts = start_ray(config, backend)
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
    finally:
        _stop_ray()
    if "summary" not in results:
        raise FedtnaError("the simulation ended without a result; rerun with verbose=true to see why")
    summary = results["summary"]
    summary["simulation_wall_seconds"] = round(time.perf_counter() - started, 3)
    summary.update(ray_facts)
    return summary


def _fedtna_cause(error: BaseException) -> FedtnaError | None:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, FedtnaError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
