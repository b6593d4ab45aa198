"""A real Flower deployment on one host: a SuperLink and N SuperNodes over gRPC, the same apps.

:class:`LocalDeployment` starts the daemons on free loopback ports, submits runs with
``flwr run`` (the whole config travels as JSON in the run-config key ``cfg-json``),
polls the run status until it finished and always stops the daemons. ``flwr run``
exits 0 even when the run fails, so the status comes from the Control API's
``ListRuns``; anything but ``finished:completed`` raises :class:`DeploymentError`
carrying the last lines of ``flwr log``. :func:`deploy_local` does all of it for one run.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc

from fedtna.config import RunConfig
from fedtna.deploy.app import APP_DIR_NAME, stage_app
from fedtna.deploy.auth import NodeKey, make_node_keys
from fedtna.deploy.commands import AUTH_NEEDS_TLS, superlink_argv, supernode_argv
from fedtna.deploy.control import ControlClient, ControlProcess, ControlUnavailableError
from fedtna.deploy.errors import DeploymentError
from fedtna.deploy.flwr_cli import (
    flower_env,
    flower_executable,
    list_supernodes,
    register_supernode,
    run_log_tail,
    run_status,
    stop_run,
    submit_run,
    write_connection_config,
)
from fedtna.deploy.processes import LOOPBACK, Daemon, free_ports, start_daemon, stop_all, wait_until_listening
from fedtna.deploy.run_config import plain_run_config, write_run_config_toml
from fedtna.fl.checkpoint import load_checkpoint
from fedtna.fl.experiment import prepare, write_config

CONNECTION = "fedtna-local"
COMPLETED = "finished:completed"
CERT_FILES = ("ca.crt", "server.pem", "server.key")
STATE_DATABASE = "superlink-state.db"


@dataclass
class DeployResult:
    """What a finished deployment run left behind, plus timings in seconds."""

    run_id: int
    status: str
    output_dir: Path
    log_dir: Path
    timings: dict[str, float] = field(default_factory=dict)
    lost_supernodes: list[str] = field(default_factory=list)

    @property
    def metrics_path(self) -> Path:
        """The per-round metrics the ServerApp wrote."""
        return self.output_dir / "metrics.jsonl"

    @property
    def summary_path(self) -> Path:
        """The run summary the ServerApp wrote."""
        return self.output_dir / "summary.json"

    def rows(self) -> list[dict[str, Any]]:
        """The per-round rows of metrics.jsonl (none if it is missing)."""
        if not self.metrics_path.is_file():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]


def _checked_certs_dir(certs_dir: str | Path | None) -> Path | None:
    """``certs_dir`` made absolute, after checking it holds the files scripts/make_certs.sh writes."""
    if certs_dir is None:
        return None
    certs = Path(certs_dir).resolve()
    for name in CERT_FILES:
        if not (certs / name).is_file():
            raise DeploymentError(f"{certs / name} is missing; run scripts/make_certs.sh {certs}")
    return certs


class LocalDeployment:
    """A SuperLink and ``num_supernodes`` SuperNodes on one host, stopped on exit.

    Every daemon has its own FLWR_HOME under a private work directory, and the ``flwr``
    CLI a config.toml declaring the connection. ``certs_dir`` (ca.crt, server.pem,
    server.key from scripts/make_certs.sh) turns on TLS for the Fleet and Control APIs.
    ``auth`` (needs ``certs_dir``) turns on SuperNode authentication: one P-384 key pair per
    SuperNode is made under ``<work_dir>/keys``, registered with ``flwr supernode register``
    and handed to its SuperNode; the SuperLink refuses any other node.

    A SuperNode that dies after the first round was recorded is a lost client, not a failed
    deployment: Flower answers the messages sent to it with errors (after its heartbeat
    expires, at most ~60 s) and the strategy counts it in ``failed_clients``.

    Hosts: the SuperLink's Fleet and Control APIs serve on ``host``; the ServerAppIo and
    ClientAppIo APIs stay on each daemon's own loopback. ``superlink_prefix`` and
    ``supernode_prefixes`` (one per SuperNode) go before the daemons' commands, e.g.
    ``ip netns exec <ns>`` to run each in its own network namespace; the ``flwr`` CLI and the
    status queries then run behind ``superlink_prefix`` too. ``database``: the SuperLink keeps
    its state in ``<work_dir>/superlink-state.db``, so :meth:`restart_superlink` finds it again.
    """

    def __init__(self, num_supernodes: int, log_dir: str | Path | None = None, *,
                 certs_dir: str | Path | None = None, host: str = LOOPBACK, ready_timeout: float = 60.0,
                 work_dir: str | Path | None = None, auth: bool = False, superlink_prefix: Sequence[str] = (),
                 supernode_prefixes: Sequence[Sequence[str]] = (), database: bool = False) -> None:
        if num_supernodes < 1:
            raise DeploymentError(f"num_supernodes={num_supernodes} must be >= 1")
        if auth and certs_dir is None:
            raise DeploymentError(AUTH_NEEDS_TLS)
        self.num_supernodes = num_supernodes
        self.certs_dir = _checked_certs_dir(certs_dir)
        self.auth = auth
        self.host = host
        self.node_keys: list[NodeKey] = []
        self.node_ids: dict[str, int] = {}  # SuperNode name -> node id given at registration (auth only)
        self.supernodes: list[Daemon] = []
        self.lost_supernodes: list[str] = []
        self.ready_timeout = ready_timeout
        self.superlink_prefix = list(superlink_prefix)
        self.supernode_prefixes = [list(prefix) for prefix in supernode_prefixes]
        self._own_work_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="fedtna-deploy-") if work_dir is None else work_dir)
        self.log_dir = Path(log_dir) if log_dir else self.work_dir / "logs"
        self.daemons: list[Daemon] = []
        self.timings: dict[str, float] = {}
        self._control: ControlClient | ControlProcess | None = None
        self._app_dir: Path | None = None
        self.runs: list[int] = []  # run ids submitted here, in order
        self.database = self.work_dir / STATE_DATABASE if database else None
        ports = free_ports(3 + num_supernodes)  # free here; other namespaces start with every port free
        self.serverappio = f"{LOOPBACK}:{ports[0]}"
        self.fleet, self.control = (f"{host}:{port}" for port in ports[1:3])
        self.clientappio = [f"{LOOPBACK}:{port}" for port in ports[3:]]
        self.cli_env = flower_env(self.work_dir / "home" / "cli")
        write_connection_config(self.work_dir / "home" / "cli", CONNECTION, self.control, self.ca_certificate)

    @property
    def ca_certificate(self) -> Path | None:
        """The CA certificate clients of the SuperLink trust (None without TLS)."""
        return self.certs_dir / "ca.crt" if self.certs_dir else None

    # -- lifecycle --
    def __enter__(self) -> LocalDeployment:
        try:
            self.start()
        except BaseException:
            self.stop(keep_logs=True)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.stop(keep_logs=exc_type is not None)

    def start(self) -> None:
        """Start the SuperLink, wait for its Control and Fleet APIs, register the node keys (``auth``),
        then start the SuperNodes."""
        started = time.perf_counter()
        self._start_superlink()
        self.timings["superlink_ready_s"] = round(time.perf_counter() - started, 3)
        if self.auth:
            self.node_keys = make_node_keys(self.work_dir / "keys", self.num_supernodes)
            for key in self.node_keys:
                self.node_ids[key.name] = self.register_key(key)
            self.timings["registered_s"] = round(time.perf_counter() - started, 3)
        for partition_id, address in enumerate(self.clientappio):
            private_key = self.node_keys[partition_id].private_key if self.auth else None
            self.supernodes.append(self.start_supernode(partition_id, address, private_key=private_key))
        for supernode, address in zip(self.supernodes, self.clientappio, strict=True):
            wait_until_listening(supernode, address, self.ready_timeout, in_namespace=bool(supernode.prefix))
        self.timings["startup_s"] = round(time.perf_counter() - started, 3)

    def _start_superlink(self) -> Daemon:
        """Start the SuperLink as ``daemons[0]`` and wait for its Control and Fleet APIs."""
        argv = superlink_argv(self.fleet, self.control, self.serverappio, self.certs_dir,
                              flower_executable("flower-superlink"), auth=self.auth, database=self.database)
        superlink = start_daemon("superlink", argv, flower_env(self.work_dir / "home" / "superlink"),
                                 self.log_dir / "superlink.log", cwd=self.work_dir, prefix=self.superlink_prefix)
        if self.daemons:
            self.daemons[0] = superlink
        else:
            self.daemons.append(superlink)
        for address in (self.control, self.fleet):
            wait_until_listening(superlink, address, self.ready_timeout, in_namespace=bool(self.superlink_prefix))
        return superlink

    def restart_superlink(self) -> dict[int, str]:
        """SIGKILL whatever is left of the SuperLink's process group (its ServerApps with it), start it again
        with the same command line, wait until it listens and stop the runs it had going.

        With ``database`` it reopens its state (runs, nodes, registered keys) and the SuperNodes
        reconnect on their own (Flower retries with backoff, at most 20 s apart). A run whose
        ServerApp died with the old SuperLink is lost, yet Flower 1.32 lists it as ``running`` until
        its heartbeat lapses (2 x 30 s) and then fails it; this stops it at once. Returns
        run id -> final status of the runs submitted here (``finished:stopped`` for the lost ones).
        """
        if not self.daemons:
            raise DeploymentError("the deployment was not started")
        self.daemons[0].kill()
        self._start_superlink()
        statuses = {}
        for run_id in self.runs:
            with contextlib.suppress(DeploymentError):  # a SuperLink without a database knows no run
                statuses[run_id] = self.status(run_id)
                if not statuses[run_id].startswith("finished"):
                    stop_run(run_id, CONNECTION, self.cli_env, prefix=self.superlink_prefix)
                    statuses[run_id] = self.status(run_id)
        return statuses

    def register_key(self, key: NodeKey) -> int:
        """``flwr supernode register`` the node's public key with this SuperLink; returns the node id."""
        return register_supernode(key.public_key, CONNECTION, self.cli_env, prefix=self.superlink_prefix)

    def start_supernode(self, partition_id: int, clientappio: str | None = None, *, name: str | None = None,
                        private_key: str | Path | None = None, num_partitions: int | None = None,
                        prefix: Sequence[str] | None = None) -> Daemon:
        """Start one ``flower-supernode`` (stopped with the deployment) and return it without waiting.

        The deployment's own SuperNodes are started by :meth:`start`; an extra one (e.g. a node
        with a key the SuperLink does not know) is not one of ``supernodes``. ``prefix``: its
        command prefix (default: ``supernode_prefixes[partition_id]`` when there is one).
        """
        name = name or f"supernode-{partition_id}"
        clientappio = clientappio or f"{LOOPBACK}:{free_ports(1)[0]}"
        if prefix is None:
            prefix = self.supernode_prefixes[partition_id] if partition_id < len(self.supernode_prefixes) else []
        argv = supernode_argv(self.fleet, clientappio, partition_id,
                              self.num_supernodes if num_partitions is None else num_partitions,
                              self.certs_dir, flower_executable("flower-supernode"), private_key=private_key)
        daemon = start_daemon(name, argv, flower_env(self.work_dir / "home" / name), self.log_dir / f"{name}.log",
                              cwd=self.work_dir, prefix=prefix)
        self.daemons.append(daemon)
        return daemon

    def supernode_status(self) -> dict[int, str]:
        """The SuperLink's SuperNodes (``flwr supernode ls``): node id -> status."""
        return list_supernodes(CONNECTION, self.cli_env, prefix=self.superlink_prefix)

    def stop(self, keep_logs: bool = False) -> None:
        """Terminate every daemon with its children; remove a private work dir (its logs stay if ``keep_logs``)."""
        if self._control is not None:
            self._control.close()
            self._control = None
        stop_all(self.daemons)
        self.daemons = []
        self.supernodes = []
        if not self._own_work_dir:
            return
        if keep_logs and self.log_dir.is_relative_to(self.work_dir):
            for private in ("home", "app", "keys"):
                shutil.rmtree(self.work_dir / private, ignore_errors=True)
        else:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def check_daemons(self, tolerate_lost_supernodes: bool = False) -> None:
        """Raise if the SuperLink died, or a SuperNode unless ``tolerate_lost_supernodes`` (then note it
        in ``lost_supernodes``, with one warning line); raise when no SuperNode is left."""
        superlink = self.daemons[0] if self.daemons else None
        if superlink is not None and not superlink.alive():
            raise superlink.died_error("while the run was going")
        for daemon in self.supernodes:
            if daemon.alive() or daemon.name in self.lost_supernodes:
                continue
            if not tolerate_lost_supernodes:
                raise daemon.died_error("while the run was going")
            self.lost_supernodes.append(daemon.name)
            print(f"warning: {daemon.name} exited with code {daemon.process.returncode} during the run; "
                  "the run goes on without it (its messages fail)", file=sys.stderr)
        if self.supernodes and len(self.lost_supernodes) == len(self.supernodes):
            raise DeploymentError(f"every SuperNode exited during the run: {', '.join(self.lost_supernodes)}")

    # -- runs --
    def staged_app_dir(self) -> Path:
        """The staged Flower app, written on first use."""
        if self._app_dir is None:
            self._app_dir = stage_app(self.work_dir / "app" / APP_DIR_NAME)
        return self._app_dir

    def submit(self, config: RunConfig | Mapping[str, Any]) -> int:
        """Write the run-config TOML and ``flwr run`` the staged app; returns the run id."""
        plain = plain_run_config(config)
        toml_path = write_run_config_toml(plain, self.log_dir / "run_config.toml")
        Path(plain["output_dir"]).mkdir(parents=True, exist_ok=True)
        run_id = submit_run(self.staged_app_dir(), CONNECTION, toml_path, self.cli_env, prefix=self.superlink_prefix)
        self.runs.append(run_id)
        return run_id

    def status(self, run_id: int) -> str:
        """The run's status via the Control API; falls back to ``flwr ls --format json``.

        Behind ``superlink_prefix`` the Control API is asked from a :class:`ControlProcess` there.
        """
        try:
            if self._control is None:
                self._control = (ControlProcess(self.superlink_prefix, self.control, self.ca_certificate,
                                                self.cli_env) if self.superlink_prefix
                                 else ControlClient(self.control, self.ca_certificate))
            return self._control.status(run_id)
        except (grpc.RpcError, ControlUnavailableError):  # the CLI reports trouble in its own words
            if isinstance(self._control, ControlProcess) and self._control.process.poll() is not None:
                self._control = None  # the helper ended: start a new one next time
            return run_status(run_id, CONNECTION, self.cli_env, prefix=self.superlink_prefix)

    def wait(self, run_id: int, timeout: float | None = None, poll: float = 1.0,
             output_dir: str | Path | None = None) -> str:
        """Poll the run's status until it finished; returns the status text.

        Once ``output_dir`` holds a recorded round (partitions were discovered), a SuperNode that
        dies is a lost client (``lost_supernodes``); before that it fails the deployment. A SuperLink
        that dies takes the run with it: that raises at once, saying where to resume from.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        metrics = None if output_dir is None else Path(output_dir) / "metrics.jsonl"
        while True:
            self._check_superlink(run_id, output_dir)
            try:
                status = self.status(run_id)
            except DeploymentError:
                self._check_superlink(run_id, output_dir)  # its death explains the failed query best
                raise
            if status.startswith("finished"):
                return status
            self.check_daemons(tolerate_lost_supernodes=metrics is not None and _has_a_round(metrics))
            if deadline is not None and time.monotonic() > deadline:
                stop_run(run_id, CONNECTION, self.cli_env, prefix=self.superlink_prefix)
                raise DeploymentError(f"run {run_id} still {status!r} after {timeout:.0f} s; stopped it.\n"
                                      f"last lines of `flwr log`:\n{self.log_tail(run_id)}")
            time.sleep(poll)

    def _check_superlink(self, run_id: int, output_dir: str | Path | None) -> None:
        """Raise, in one first line, that the run is lost when the SuperLink died (and where to resume)."""
        superlink = self.daemons[0] if self.daemons else None
        if superlink is not None and not superlink.alive():
            raise DeploymentError(f"the SuperLink exited with code {superlink.process.returncode} during run "
                                  f"{run_id}: the run is lost{_resume_hint(output_dir)}\n{superlink.log_tail(10)}")

    def log_tail(self, run_id: int, lines: int = 40) -> str:
        """The last lines of ``flwr log`` for the run."""
        return run_log_tail(run_id, CONNECTION, self.cli_env, lines, prefix=self.superlink_prefix)

    def run(self, config: RunConfig | Mapping[str, Any], timeout: float | None = None) -> DeployResult:
        """Submit ``config``, wait until the run finished, raise unless it completed."""
        started = time.perf_counter()
        output_dir = Path(plain_run_config(config)["output_dir"])
        run_id = self.submit(config)
        self.timings["submit_s"] = round(time.perf_counter() - started, 3)
        status = self.wait(run_id, timeout, output_dir=output_dir)
        self.timings["run_s"] = round(time.perf_counter() - started, 3)
        if status != COMPLETED:
            supernode_tails = "\n".join(f"--- {d.name} ---\n{d.log_tail(10)}" for d in self.daemons[1:])
            raise DeploymentError(f"run {run_id} ended {status!r} (logs in {self.log_dir}).\n"
                                  f"last lines of `flwr log`:\n{self.log_tail(run_id)}\n{supernode_tails}")
        return DeployResult(run_id, status, output_dir, self.log_dir, dict(self.timings), list(self.lost_supernodes))


def _resume_hint(output_dir: str | Path | None) -> str:
    """``; round N is checkpointed: resume=<dir> continues it`` when ``output_dir`` holds a checkpoint."""
    checkpoint = load_checkpoint(output_dir) if output_dir is not None else None
    if checkpoint is None:
        return " (no round was checkpointed: start it again)" if output_dir is not None else ""
    return f"; round {checkpoint.server_round} is checkpointed: resume={output_dir} continues it"


def _has_a_round(metrics: Path) -> bool:
    """Whether the ServerApp recorded a round in ``metrics`` (metrics.jsonl)."""
    try:
        return any(line.strip() for line in metrics.read_text().splitlines())
    except OSError:
        return False


def deploy_local(config: RunConfig, num_supernodes: int | None = None, *, timeout: float | None = None,
                 validate: bool = True, **deployment_kwargs: Any) -> DeployResult:
    """One full local deployment: write config.json, validate, start the daemons, run, stop them.

    One SuperNode per client unless ``num_supernodes`` says otherwise (the ServerApp needs
    every partition id ``0..num_clients-1`` served). Daemon logs, the run-config TOML and
    deploy.json go to ``<output_dir>/deploy``; the ServerApp writes metrics.jsonl,
    metrics.csv and summary.json into ``output_dir``.
    """
    config = replace(config, output_dir=str(Path(config.output_dir).resolve()))
    write_config(config)
    if validate:
        prepare(config)
    deployment_kwargs.setdefault("log_dir", Path(config.output_dir) / "deploy")
    count = config.num_clients if num_supernodes is None else num_supernodes
    started = time.perf_counter()
    with LocalDeployment(count, **deployment_kwargs) as deployment:
        result = deployment.run(config, timeout=timeout)
    result.timings["total_s"] = round(time.perf_counter() - started, 3)
    (result.log_dir / "deploy.json").write_text(json.dumps(
        {"run_id": result.run_id, "status": result.status, "timings": result.timings,
         "lost_supernodes": result.lost_supernodes}, indent=2) + "\n")
    return result
