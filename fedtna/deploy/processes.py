"""Daemon processes of a local deployment: start in their own process group, wait for a port, stop all.

Every daemon runs in its own process group (its flower-superexec and flwr-serverapp /
flwr-clientapp children with it); stopping SIGTERMs the groups, waits, then SIGKILLs.
On Linux the daemons also get SIGTERM when the starting process dies (PR_SET_PDEATHSIG),
so start deployments from the main thread.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from fedtna.deploy.errors import DeploymentError

LOOPBACK = "127.0.0.1"
PR_SET_PDEATHSIG = 1
TCP_LISTEN = "0A"  # the state column of /proc/net/tcp


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


def listening(pid: int, address: str) -> bool:
    """Whether a TCP socket listens on ``address`` (IPv4 host:port) in the network namespace of ``pid``.

    Reads ``/proc/<pid>/net/tcp`` and ``tcp6`` (gRPC may listen on a dual-stack socket), which
    list the sockets of that process's namespace, so it also sees daemons started inside
    another network namespace (Linux only; False elsewhere).
    """
    host, port = address.rsplit(":", 1)
    wanted = {ipaddress.IPv4Address(host), ipaddress.IPv4Address("0.0.0.0")}
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                local_ip, local_port = fields[1].split(":")
                if fields[3] == TCP_LISTEN and int(local_port, 16) == int(port) and _proc_ip(local_ip) in wanted:
                    return True
    return False


def _proc_ip(hex_address: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address of a /proc/net/tcp{,6} address column (IPv6 any and v4-mapped count), else None."""
    raw = bytes.fromhex(hex_address)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # 32-bit words in host (little) order
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw)
    v6 = ipaddress.IPv6Address(raw)
    return ipaddress.IPv4Address("0.0.0.0") if v6 == ipaddress.IPv6Address("::") else v6.ipv4_mapped


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM the daemon when the process that started it dies (e.g. a killed pytest)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _group_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process is in process group ``pgid``."""
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


@dataclass
class Daemon:
    """One started process; its process group id is its pid, so its children go with it."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen
    log_handle: IO[bytes]
    prefix: list[str] = field(default_factory=list)  # the command prefix argv starts with (e.g. ip netns exec)

    def alive(self) -> bool:
        """Whether the daemon itself still runs."""
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the daemon's log (empty if unreadable)."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def terminate(self) -> None:
        """SIGTERM the daemon's process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGTERM)

    def finished(self) -> bool:
        """Whether the daemon and every process of its group are gone."""
        return not self.alive() and not _group_alive(self.process.pid)

    def kill(self) -> None:
        """SIGKILL whatever is left of the group, reap the daemon and close its log."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.log_handle.close()

    def died_error(self, doing: str) -> DeploymentError:
        """The error saying the daemon exited while ``doing``, with its log tail."""
        return DeploymentError(f"{self.name} exited with code {self.process.returncode} {doing}:\n"
                               f"{self.log_tail()}")


def start_daemon(name: str, argv: list[str], env: Mapping[str, str], log_path: Path,
                 cwd: str | Path | None = None, prefix: Sequence[str] = ()) -> Daemon:
    """Popen ``[*prefix, *argv]`` in its own session with stdout and stderr appended to ``log_path``.

    ``prefix`` must exec the command in place (as ``ip netns exec <ns>`` does), so the daemon's
    pid and process group stay the ones started here.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = log_path.open("ab")
    argv = [*prefix, *argv]
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, env=dict(env),
        cwd=cwd, start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    return Daemon(name, argv, log_path, process, handle, list(prefix))


def wait_until_listening(daemon: Daemon, address: str, timeout: float, in_namespace: bool = False) -> None:
    """Block until ``address`` (host:port) accepts connections; raise if the daemon dies or time runs out.

    ``in_namespace``: the daemon runs in a network namespace this process cannot reach, so look
    for its listening socket in ``/proc/<pid>/net/tcp`` instead of connecting.
    """
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while not (listening(daemon.process.pid, address) if in_namespace else port_open(host, int(port))):
        if not daemon.alive():
            raise daemon.died_error(f"before listening on {address}")
        if time.monotonic() > deadline:
            raise DeploymentError(f"{daemon.name} not listening on {address} within {timeout:.0f} s:\n"
                                  f"{daemon.log_tail()}")
        time.sleep(0.1)


def stop_all(daemons: Sequence[Daemon], grace: float = 10.0) -> None:
    """SIGTERM every daemon's group at once, wait up to ``grace`` s for all, SIGKILL the rest."""
    for daemon in daemons:
        daemon.terminate()
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not all(daemon.finished() for daemon in daemons):
        time.sleep(0.05)
    for daemon in daemons:
        daemon.kill()


def processes_with_environment(name: str, value: str) -> list[int]:
    """Pids of live processes (readable by this user) whose environment holds ``name=value``.

    A private value (e.g. ``FLWR_HOME=<tmp dir>``) marks every process started under it, also
    those that left their parent's process group, such as the SuperLink ``flwr run`` detaches.
    Linux only (/proc); elsewhere the list is empty.
    """
    marker = f"{name}={value}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        pid = int(environ.parent.name)
        if pid == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in environ.read_bytes().split(b"\0") and _state_of(pid) != "Z":
                found.append(pid)
    return sorted(found)


def _state_of(pid: int) -> str:
    """The /proc state letter of ``pid`` ("Z" for a zombie; "" if unreadable)."""
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return ""


def stop_processes(pids: Sequence[int], grace: float = 10.0) -> None:
    """SIGTERM ``pids`` (a process group leader with its group), wait up to ``grace`` s, SIGKILL what is left."""
    def signal_all(signum: int) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signum)
                else:
                    os.kill(pid, signum)

    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_state_of(pid) not in ("", "Z") for pid in pids):
        time.sleep(0.1)
    signal_all(signal.SIGKILL)
