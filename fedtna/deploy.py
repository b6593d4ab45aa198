"""Real Flower deployment (SuperLink + SuperNodes over gRPC) of the same ServerApp/ClientApp.

The apps read the whole resolved config from the run-config key ``cfg-json``
(``fedtna.server_app`` / ``fedtna.clients.client_app``); this module

* writes that key into a ``--run-config`` TOML file (:func:`write_run_config_toml`),
* composes the config from Hydra overrides (:func:`compose_run_config`),
* starts a SuperLink and N SuperNodes on 127.0.0.1 (:class:`LocalDeployment`),
  submits with ``flwr run``, polls the run status until it finished and always
  terminates the daemons (:func:`deploy_local` does all of it).

``flwr run`` returns 0 even when the run failed, so the status comes from the Control
API's ``ListRuns`` (what ``flwr ls --run-id <id> --format json`` prints; asked in-process
by :class:`ControlClient`, with the CLI as fallback) and anything but
``finished:completed`` raises :class:`DeploymentError` carrying the last lines of
``flwr log``.

Processes: every daemon runs in its own process group (its flower-superexec and
flwr-serverapp/flwr-clientapp children with it); stopping SIGTERMs the groups, waits,
then SIGKILLs. On Linux the daemons also get SIGTERM if the starting process dies
(PR_SET_PDEATHSIG), so start deployments from the main thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import tomli_w

from fedtna.errors import FedtnaError

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
RUN_CONFIG_KEY = "cfg-json"
CONNECTION = "fedtna-local"
LOOPBACK = "127.0.0.1"
COMPLETED = "finished:completed"

FLOWER_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "GRPC_ENABLE_FORK_SUPPORT": "0",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
}
# What the FAB needs: ``flwr run`` walks the whole directory it is given (a .venv with
# 50k files costs ~8 s on 2 cores), so runs are submitted from a staged copy of these.
APP_ENTRIES = ("pyproject.toml", ".gitignore", "README.md", "LICENSE", "fedtna", "conf")
APP_SUFFIXES = (".py", ".toml", ".md", ".yaml", ".yml", ".json")


class DeploymentError(FedtnaError):
    """A daemon failed to start, or the Flower run did not finish as completed."""


# ---- run config ----------------------------------------------------------------


def write_run_config_toml(run_config: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``cfg-json = '<json of run_config>'`` for ``flwr run --run-config <path>``.

    tomli_w escapes quotes, apostrophes and backslashes, so any JSON survives;
    nested dicts and lists survive because they travel as one JSON string.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dict(run_config), sort_keys=True, allow_nan=False)
    path.write_text(tomli_w.dumps({RUN_CONFIG_KEY: text}))
    return path


def read_run_config_toml(path: str | Path) -> dict[str, Any]:
    """Inverse of :func:`write_run_config_toml` (what the apps get from ``cfg-json``)."""
    import tomllib

    return json.loads(tomllib.loads(Path(path).read_text())[RUN_CONFIG_KEY])


def default_output_dir(run_config: Mapping[str, Any], root: str | Path = "outputs/deploy") -> Path:
    """``<root>/<date>/<time>_<strategy>``, like ``python -m fedtna.run``, made absolute."""
    now = datetime.now()
    name = f"{now:%H-%M-%S}_{run_config.get('strategy', {}).get('name', 'run')}"
    return (Path(root) / f"{now:%Y-%m-%d}" / name).resolve()


def compose_run_config(overrides: Sequence[str] = (), output_dir: str | Path | None = None,
                       config_dir: str | Path = CONF_DIR) -> dict[str, Any]:
    """The resolved run config for Hydra ``overrides`` plus an absolute ``output_dir``."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    run_config = OmegaConf.to_container(cfg, resolve=True)
    run_config["output_dir"] = str(Path(output_dir).resolve() if output_dir else default_output_dir(run_config))
    return run_config


# ---- processes -------------------------------------------------------------------


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct ports that were free a moment ago (bound to port 0, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


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


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM the daemon if the process that started it dies (e.g. a killed pytest)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Daemon:
    """One started process (own process group, so its children go with it)."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen
    log_handle: IO[bytes]

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def terminate(self) -> None:
        """SIGTERM the daemon's process group (its children: flower-superexec, flwr-*app)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGTERM)  # start_new_session: group id == pid

    def finished(self) -> bool:
        """Whether the daemon and every process of its group are gone."""
        return not self.alive() and not _group_alive(self.process.pid)

    def kill(self) -> None:
        """SIGKILL whatever is left of the group; reap the daemon; close its log."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.log_handle.close()

    def stop(self, grace: float = 10.0) -> None:
        """Terminate, wait up to ``grace`` seconds, then kill."""
        stop_all([self], grace)


def stop_all(daemons: Sequence[Daemon], grace: float = 10.0) -> None:
    """SIGTERM every daemon's group at once, wait up to ``grace`` s for all, SIGKILL the rest."""
    for daemon in daemons:
        daemon.terminate()
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not all(daemon.finished() for daemon in daemons):
        time.sleep(0.05)
    for daemon in daemons:
        daemon.kill()


def _group_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process is in group ``pgid``."""
    proc = Path("/proc")
    if proc.is_dir():  # Linux: zombies re-parented to a non-reaping init must not count
        for stat in proc.glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    return True
        return False
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def start_daemon(name: str, argv: list[str], env: Mapping[str, str], log_path: Path,
                 cwd: str | Path | None = None) -> Daemon:
    """Popen ``argv`` in its own session with stdout+stderr to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = log_path.open("ab")
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, env=dict(env),
        cwd=cwd, start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    return Daemon(name, argv, log_path, process, handle)


def superlink_argv(fleet: str, control: str, serverappio: str, certs_dir: Path | None = None) -> list[str]:
    """``flower-superlink`` command line (``--insecure`` unless ``certs_dir`` holds ca.crt/server.pem/server.key)."""
    argv = [flower_executable("flower-superlink")]
    if certs_dir is None:
        argv.append("--insecure")
    else:
        argv += ["--ssl-ca-certfile", str(certs_dir / "ca.crt"), "--ssl-certfile", str(certs_dir / "server.pem"),
                 "--ssl-keyfile", str(certs_dir / "server.key")]
    return argv + ["--fleet-api-address", fleet, "--control-api-address", control,
                   "--serverappio-api-address", serverappio, "--disable-runtime-dependency-installation"]


def supernode_argv(superlink_fleet: str, clientappio: str, partition_id: int, num_partitions: int,
                   certs_dir: Path | None = None) -> list[str]:
    """``flower-supernode`` command line serving one partition."""
    argv = [flower_executable("flower-supernode")]
    argv += ["--insecure"] if certs_dir is None else ["--root-certificates", str(certs_dir / "ca.crt")]
    return argv + ["--superlink", superlink_fleet, "--clientappio-api-address", clientappio,
                   "--node-config", f"partition-id={partition_id} num-partitions={num_partitions}"]


def write_connection_config(flwr_home: str | Path, address: str, name: str = CONNECTION,
                            root_certificates: str | Path | None = None) -> Path:
    """``$FLWR_HOME/config.toml`` declaring the SuperLink connection ``name`` (the Control API)."""
    connection: dict[str, Any] = {"address": address}
    if root_certificates is None:
        connection["insecure"] = True
    else:
        connection["root-certificates"] = str(Path(root_certificates).resolve())
    path = Path(flwr_home) / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps({"superlink": {"default": name, name: connection}}))
    return path


def stage_app(dest: str | Path, repo: str | Path = REPO) -> Path:
    """Copy the files the FAB needs (pyproject.toml, fedtna/, conf/) to ``dest``; returns it."""
    repo, dest = Path(repo), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for entry in APP_ENTRIES:
        source = repo / entry
        if source.is_file():
            shutil.copy2(source, dest / entry)
        elif source.is_dir():
            for file in source.rglob("*"):
                if file.is_file() and file.suffix in APP_SUFFIXES and "__pycache__" not in file.parts:
                    target = dest / file.relative_to(repo)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, target)
    if not (dest / "pyproject.toml").is_file():
        raise DeploymentError(f"{repo} has no pyproject.toml; is it the fedtna project?")
    return dest


# ---- flwr CLI --------------------------------------------------------------------


def flwr_cli(args: Sequence[str], env: Mapping[str, str], timeout: float = 120.0,
             cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run ``flwr <args>`` and return the completed process (never raises on exit code)."""
    try:
        return subprocess.run([flower_executable("flwr"), *args], env=dict(env), cwd=cwd, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as error:
        raise DeploymentError(f"`flwr {' '.join(args)}` did not answer within {timeout:.0f} s") from error


def _json_of(completed: subprocess.CompletedProcess, what: str) -> dict[str, Any]:
    text = completed.stdout.strip()
    start = text.find("{")
    try:
        payload = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict) or not payload.get("success", False):
        detail = (payload or {}).get("error-message") if isinstance(payload, dict) else None
        raise DeploymentError(f"{what} failed (exit {completed.returncode}): "
                              f"{detail or (completed.stdout + completed.stderr).strip()[-2000:]}")
    return payload


def submit_run(app_dir: str | Path, connection: str, run_config_toml: str | Path, env: Mapping[str, str]) -> int:
    """``flwr run <app_dir> <connection> --run-config <toml> --format json``; returns the run id."""
    completed = flwr_cli(["run", str(app_dir), connection, "--run-config", str(run_config_toml),
                          "--format", "json"], env, timeout=300)
    payload = _json_of(completed, "flwr run")
    return int(payload["run-id"])


def run_status(run_id: int, connection: str, env: Mapping[str, str]) -> str:
    """The status text of a run, e.g. ``running`` or ``finished:completed``."""
    payload = _json_of(flwr_cli(["ls", connection, "--run-id", str(run_id), "--format", "json"], env),
                       "flwr ls")
    runs = payload.get("runs") or []
    if not runs:
        raise DeploymentError(f"flwr ls knows no run {run_id}")
    return str(runs[0]["status"])


class ControlClient:
    """In-process ``flwr ls --run-id``: one gRPC channel to the Control API, no CLI process per poll.

    Each ``flwr ls`` costs ~1.3 CPU-seconds (imports), which the ClientApps of a 2-core
    machine feel; this asks the same ``ListRuns`` RPC and formats the status like the CLI.
    """

    def __init__(self, address: str, root_certificates: str | Path | None = None) -> None:
        from flwr.proto.control_pb2_grpc import ControlStub  # pylint: disable=E0611
        from flwr.supercore.grpc import create_channel
        from flwr.supercore.interceptors import RuntimeVersionClientInterceptor

        certificates = Path(root_certificates).read_bytes() if root_certificates else None
        self.channel = create_channel(server_address=address, insecure=certificates is None,
                                      root_certificates=certificates,
                                      interceptors=[RuntimeVersionClientInterceptor(component_name="flwr CLI")])
        self.stub = ControlStub(self.channel)

    def status(self, run_id: int, timeout: float = 30.0) -> str:
        """``finished:completed``, ``running``, ... exactly as ``flwr ls`` prints it."""
        from flwr.common.serde import run_from_proto
        from flwr.proto.control_pb2 import ListRunsRequest  # pylint: disable=E0611

        response = self.stub.ListRuns(ListRunsRequest(run_id=run_id), timeout=timeout)
        if run_id not in response.run_dict:
            raise DeploymentError(f"the SuperLink knows no run {run_id}")
        status = run_from_proto(response.run_dict[run_id]).status
        return f"{status.status}:{status.sub_status}" if status.sub_status else status.status

    def close(self) -> None:
        self.channel.close()


def run_log_tail(run_id: int, connection: str, env: Mapping[str, str], lines: int = 40) -> str:
    """The last ``lines`` lines of ``flwr log <run_id> --show`` (best effort)."""
    try:
        completed = flwr_cli(["log", str(run_id), connection, "--show"], env, timeout=60)
    except DeploymentError as error:
        return str(error)
    text = (completed.stdout + completed.stderr).rstrip()
    return "\n".join(text.splitlines()[-lines:])


# ---- the deployment ----------------------------------------------------------------


@dataclass
class DeployResult:
    """What a finished deployment run left behind, plus timings in seconds."""

    run_id: int
    status: str
    output_dir: Path
    log_dir: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def metrics_path(self) -> Path:
        return self.output_dir / "metrics.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.output_dir / "summary.json"

    def rows(self) -> list[dict[str, Any]]:
        """The per-round rows of metrics.jsonl."""
        if not self.metrics_path.is_file():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]


class LocalDeployment:
    """A SuperLink and ``num_supernodes`` SuperNodes on one host, stopped on exit.

    >>> with LocalDeployment(2, log_dir="logs") as deployment:   # doctest: +SKIP
    ...     result = deployment.run(run_config)

    Ports are picked free on 127.0.0.1; every daemon has its own FLWR_HOME under a
    private work directory, and the ``flwr`` CLI a config.toml declaring the connection.
    ``certs_dir`` (ca.crt, server.pem, server.key from scripts/make_certs.sh) turns on TLS
    for the Fleet and Control APIs; without it everything runs ``--insecure``.
    """

    def __init__(self, num_supernodes: int, log_dir: str | Path | None = None, *,
                 repo: str | Path = REPO, certs_dir: str | Path | None = None,
                 host: str = LOOPBACK, ready_timeout: float = 60.0, work_dir: str | Path | None = None,
                 extra_env: Mapping[str, str] | None = None,
                 supernode_env: Sequence[Mapping[str, str]] | None = None) -> None:
        if num_supernodes < 1:
            raise DeploymentError(f"num_supernodes={num_supernodes} must be >= 1")
        self.num_supernodes = num_supernodes
        self.repo = Path(repo)
        self.certs_dir = Path(certs_dir).resolve() if certs_dir else None
        if self.certs_dir is not None:
            for name in ("ca.crt", "server.pem", "server.key"):
                if not (self.certs_dir / name).is_file():
                    raise DeploymentError(f"{self.certs_dir / name} is missing; run scripts/make_certs.sh")
        self.host = host
        self.ready_timeout = ready_timeout
        self.extra_env = dict(extra_env or {})
        self.supernode_env = list(supernode_env or [])
        self._own_work_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="fedtna-deploy-") if work_dir is None else work_dir)
        self.log_dir = Path(log_dir) if log_dir else self.work_dir / "logs"
        self.daemons: list[Daemon] = []
        self._control: ControlClient | None = None
        self.timings: dict[str, float] = {}
        ports = free_ports(3 + num_supernodes, host)
        self.serverappio, self.fleet, self.control = (f"{host}:{p}" for p in ports[:3])
        self.clientappio = [f"{host}:{p}" for p in ports[3:]]
        self.cli_env = flower_env(self.work_dir / "home" / "cli", self.extra_env)
        write_connection_config(self.work_dir / "home" / "cli", self.control,
                                root_certificates=self.certs_dir / "ca.crt" if self.certs_dir else None)

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
        """Start the SuperLink, wait for its Control API, then start the SuperNodes."""
        started = time.perf_counter()
        home = self.work_dir / "home"
        self.daemons.append(start_daemon(
            "superlink", superlink_argv(self.fleet, self.control, self.serverappio, self.certs_dir),
            flower_env(home / "superlink", self.extra_env), self.log_dir / "superlink.log", cwd=self.work_dir))
        self._wait_for_port(self.control, self.daemons[0])
        self._wait_for_port(self.fleet, self.daemons[0])
        self.timings["superlink_ready_s"] = round(time.perf_counter() - started, 3)
        for i, address in enumerate(self.clientappio):
            extra = {**self.extra_env, **(self.supernode_env[i] if i < len(self.supernode_env) else {})}
            self.daemons.append(start_daemon(
                f"supernode-{i}",
                supernode_argv(self.fleet, address, i, self.num_supernodes, self.certs_dir),
                flower_env(home / f"supernode-{i}", extra), self.log_dir / f"supernode-{i}.log",
                cwd=self.work_dir))
        for daemon in self.daemons[1:]:
            self._wait_for_port(daemon.argv[daemon.argv.index("--clientappio-api-address") + 1], daemon)
        self.timings["startup_s"] = round(time.perf_counter() - started, 3)

    def stop(self, keep_logs: bool = False) -> None:
        """Terminate every daemon (and its children); remove the private work dir.

        Logs inside a private work dir are kept when ``keep_logs`` (on errors)."""
        if self._control is not None:
            self._control.close()
            self._control = None
        stop_all(self.daemons)
        self.daemons = []
        if self._own_work_dir:
            if keep_logs and self.log_dir.is_relative_to(self.work_dir):
                shutil.rmtree(self.work_dir / "home", ignore_errors=True)
                shutil.rmtree(self.work_dir / "app", ignore_errors=True)
            else:
                shutil.rmtree(self.work_dir, ignore_errors=True)

    def _wait_for_port(self, address: str, daemon: Daemon) -> None:
        host, port = address.rsplit(":", 1)
        deadline = time.monotonic() + self.ready_timeout
        while not port_open(host, int(port)):
            if not daemon.alive():
                raise DeploymentError(f"{daemon.name} exited with code {daemon.process.returncode} "
                                      f"before listening on {address}:\n{daemon.log_tail()}")
            if time.monotonic() > deadline:
                raise DeploymentError(f"{daemon.name} not listening on {address} within "
                                      f"{self.ready_timeout:.0f} s:\n{daemon.log_tail()}")
            time.sleep(0.1)

    def check_daemons(self) -> None:
        """Raise if a daemon died."""
        for daemon in self.daemons:
            if not daemon.alive():
                raise DeploymentError(f"{daemon.name} exited with code {daemon.process.returncode}:\n"
                                      f"{daemon.log_tail()}")

    # -- runs --
    def submit(self, run_config: Mapping[str, Any]) -> int:
        """Stage the app, write the run-config TOML and ``flwr run``; returns the run id."""
        output_dir = Path(run_config["output_dir"])
        toml_path = write_run_config_toml(run_config, self.log_dir / "run_config.toml")
        app_dir = stage_app(self.work_dir / "app" / "fedtna-app", self.repo)
        output_dir.mkdir(parents=True, exist_ok=True)
        return submit_run(app_dir, CONNECTION, toml_path, self.cli_env)

    def status(self, run_id: int) -> str:
        """The run's status via the Control API; falls back to ``flwr ls --format json``."""
        try:
            if self._control is None:
                self._control = ControlClient(self.control, self.certs_dir / "ca.crt" if self.certs_dir else None)
            return self._control.status(run_id)
        except DeploymentError:
            raise
        except Exception:  # noqa: BLE001 - any gRPC/API trouble: ask the CLI, which reports clearly
            return run_status(run_id, CONNECTION, self.cli_env)

    def wait(self, run_id: int, timeout: float | None = None, poll: float = 1.0) -> str:
        """Poll the run's status until it finished; returns the status text."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(run_id)
            if status.startswith("finished"):
                return status
            self.check_daemons()
            if deadline is not None and time.monotonic() > deadline:
                flwr_cli(["stop", str(run_id), CONNECTION], self.cli_env, timeout=60)
                raise DeploymentError(f"run {run_id} still {status!r} after {timeout:.0f} s; stopped it.\n"
                                      f"last lines of `flwr log`:\n{self.log_tail(run_id)}")
            time.sleep(poll)

    def log_tail(self, run_id: int, lines: int = 40) -> str:
        """Last lines of ``flwr log`` for the run."""
        return run_log_tail(run_id, CONNECTION, self.cli_env, lines)

    def run(self, run_config: Mapping[str, Any], timeout: float | None = None) -> DeployResult:
        """Submit ``run_config``, wait until it finished, raise unless it completed."""
        started = time.perf_counter()
        run_id = self.submit(run_config)
        self.timings["submit_s"] = round(time.perf_counter() - started, 3)
        status = self.wait(run_id, timeout)
        self.timings["run_s"] = round(time.perf_counter() - started, 3)
        result = DeployResult(run_id, status, Path(run_config["output_dir"]), self.log_dir, dict(self.timings))
        if status != COMPLETED:
            supernode_tails = "\n".join(f"--- {d.name} ---\n{d.log_tail(10)}" for d in self.daemons[1:])
            raise DeploymentError(f"run {run_id} ended {status!r} (logs in {self.log_dir}).\n"
                                  f"last lines of `flwr log`:\n{self.log_tail(run_id)}\n{supernode_tails}")
        return result


def deploy_local(run_config: Mapping[str, Any], num_supernodes: int | None = None, *,
                 timeout: float | None = None, prepare: bool = True, **deployment_kwargs: Any) -> DeployResult:
    """One full local deployment: validate, start daemons, run, stop daemons.

    One SuperNode per client (``num_clients``) unless ``num_supernodes`` says otherwise
    (the ServerApp needs every partition id ``0..num_clients-1`` served). Daemon logs and
    the run-config TOML go to ``<output_dir>/deploy``; the ServerApp writes metrics.jsonl,
    metrics.csv and summary.json into ``output_dir``.
    """
    run_config = dict(run_config)
    output_dir = Path(run_config["output_dir"]).resolve()
    run_config["output_dir"] = str(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.json").write_text(json.dumps(run_config, indent=2, default=str) + "\n")
    if prepare:
        from fedtna.run import prepare as validate_and_plot

        validate_and_plot(run_config)
    count = int(num_supernodes if num_supernodes is not None else run_config["num_clients"])
    deployment_kwargs.setdefault("log_dir", output_dir / "deploy")
    started = time.perf_counter()
    with LocalDeployment(count, **deployment_kwargs) as deployment:
        result = deployment.run(run_config, timeout=timeout)
    result.timings["total_s"] = round(time.perf_counter() - started, 3)
    (result.log_dir / "deploy.json").write_text(json.dumps(
        {"run_id": result.run_id, "status": result.status, "timings": result.timings}, indent=2) + "\n")
    return result


def commands_for(run_config_toml: str | Path, num_supernodes: int, superlink_host: str = "<superlink-host>",
                 certs_dir: str | Path | None = None) -> list[str]:
    """The shell commands of a multi-machine deployment (for ``--print-commands``)."""
    tls_link = "--insecure" if certs_dir is None else (
        f"--ssl-ca-certfile {certs_dir}/ca.crt --ssl-certfile {certs_dir}/server.pem "
        f"--ssl-keyfile {certs_dir}/server.key")
    tls_node = "--insecure" if certs_dir is None else f"--root-certificates {certs_dir}/ca.crt"
    env = " ".join(f"{k}={v}" for k, v in FLOWER_ENV.items())
    lines = [f"# on every machine: export {env}; PATH=<venv>/bin:$PATH",
             f"# SuperLink host:\nflower-superlink {tls_link} --fleet-api-address 0.0.0.0:9092 "
             "--control-api-address 0.0.0.0:9093 --serverappio-api-address 127.0.0.1:9091 "
             "--disable-runtime-dependency-installation"]
    for i in range(num_supernodes):
        lines.append(f"# client machine, one SuperNode per GPU:\nCUDA_VISIBLE_DEVICES=<gpu> flower-supernode "
                     f"{tls_node} --superlink {superlink_host}:9092 --clientappio-api-address 127.0.0.1:{9094 + i} "
                     f"--node-config 'partition-id={i} num-partitions={num_supernodes}'")
    lines.append(f"# submitting machine ($FLWR_HOME/config.toml: [superlink.fedtna-remote] "
                 f"address = \"{superlink_host}:9093\", insecure = true or root-certificates = ...):\n"
                 f"flwr run . fedtna-remote --run-config {run_config_toml} --format json")
    return lines

