"""Network namespaces for deployment tests: one per host, joined by a bridge in a namespace of its own.

Every address lives on a veth end inside a namespace this module created (10.231.0.0/24 by
default); nothing is added to the root namespace. :class:`Topology` creates the namespaces,
cuts and restores a host's link (its veth end on the bridge goes down / up) and removes
everything on :meth:`Topology.remove`. :func:`netns_unavailable` says in one line why a
test cannot use namespaces here (not root, no ``ip``, namespaces not permitted), or None.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.231.0"
BRIDGE = "br0"
HOST_IFACE = "eth0"
IP_TIMEOUT_S = 20.0
NAME = re.compile(r"fedtna-(\d+)-[0-9a-f]{6}-\w+")  # fedtna-<pid of the creator>-<tag>-<host>


def ip_binary() -> str | None:
    """The ``ip`` executable, or None."""
    return shutil.which("ip") or next((path for path in ("/usr/sbin/ip", "/sbin/ip") if os.access(path, os.X_OK)),
                                      None)


def _ip(*args: str) -> None:
    """Run ``ip <args>``; raise with its stderr when it fails."""
    binary = ip_binary()
    assert binary is not None
    completed = subprocess.run([binary, *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S,
                               stdin=subprocess.DEVNULL)
    if completed.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed: {completed.stderr.strip()}")


def netns_unavailable() -> str | None:
    """Why network namespaces cannot be used here (one line), or None when they can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root"
    if ip_binary() is None:
        return "no `ip` command (iproute2)"
    probe = f"fedtna-probe-{uuid.uuid4().hex[:8]}"
    try:
        _ip("netns", "add", probe)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        return f"cannot create a network namespace: {str(error).splitlines()[0]}"
    try:
        _ip("netns", "exec", probe, "true")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        return f"cannot run a command in a network namespace: {str(error).splitlines()[0]}"
    finally:
        with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
            _ip("netns", "del", probe)
    return None


def remove_stale() -> list[str]:
    """Delete the namespaces of topologies whose creating process is gone (e.g. a killed test run)."""
    binary = ip_binary()
    listed = subprocess.run([binary, "netns", "list"], capture_output=True, text=True, timeout=IP_TIMEOUT_S) \
        if binary else None
    stale = []
    for line in (listed.stdout.splitlines() if listed is not None else []):
        match = NAME.fullmatch(line.split()[0]) if line.strip() else None
        if match and not Path(f"/proc/{match.group(1)}").exists():
            with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
                _ip("netns", "del", match.group(0))
                stale.append(match.group(0))
    return stale


@dataclass
class Topology:
    """Hosts (one namespace each, address ``<subnet>.<i+1>`` on eth0) on one bridge in its own namespace."""

    hosts: Sequence[str]
    subnet: str = SUBNET
    tag: str = field(default_factory=lambda: f"{os.getpid()}-{uuid.uuid4().hex[:6]}")
    created: list[str] = field(default_factory=list)

    @property
    def bridge_namespace(self) -> str:
        """The namespace holding the bridge and the hosts' far veth ends."""
        return f"fedtna-{self.tag}-bridge"

    def namespace(self, host: str) -> str:
        """The namespace of ``host``."""
        return f"fedtna-{self.tag}-{host}"

    def address(self, host: str) -> str:
        """The IPv4 address of ``host`` (on its eth0)."""
        return f"{self.subnet}.{list(self.hosts).index(host) + 1}"

    def prefix(self, host: str) -> list[str]:
        """The command prefix that runs a command inside ``host``'s namespace."""
        binary = ip_binary()
        assert binary is not None
        return [binary, "netns", "exec", self.namespace(host)]

    def link(self, host: str) -> str:
        """The bridge-side veth end of ``host`` (in the bridge namespace)."""
        return f"v{list(self.hosts).index(host)}"

    def create(self) -> Topology:
        """Create the namespaces, the bridge and one veth pair per host; on failure remove what was made."""
        try:
            bridge = self.bridge_namespace
            self._add_namespace(bridge)
            _ip("-n", bridge, "link", "add", BRIDGE, "type", "bridge")
            _ip("-n", bridge, "link", "set", BRIDGE, "up")
            for host in self.hosts:
                namespace = self._add_namespace(self.namespace(host))
                _ip("-n", namespace, "link", "set", "lo", "up")
                _ip("-n", bridge, "link", "add", self.link(host), "type", "veth", "peer", "name", HOST_IFACE,
                    "netns", namespace)
                _ip("-n", bridge, "link", "set", self.link(host), "master", BRIDGE, "up")
                _ip("-n", namespace, "addr", "add", f"{self.address(host)}/24", "dev", HOST_IFACE)
                _ip("-n", namespace, "link", "set", HOST_IFACE, "up")
        except BaseException:
            self.remove()
            raise
        return self

    def _add_namespace(self, name: str) -> str:
        _ip("netns", "add", name)
        self.created.append(name)
        return name

    def cut(self, host: str) -> None:
        """Take ``host``'s link down: its packets go nowhere, its address and routes stay."""
        _ip("-n", self.bridge_namespace, "link", "set", self.link(host), "down")

    def restore(self, host: str) -> None:
        """Bring ``host``'s link back up."""
        _ip("-n", self.bridge_namespace, "link", "set", self.link(host), "up")

    def remove(self) -> None:
        """Delete every namespace this topology created (their veths and the bridge go with them)."""
        while self.created:
            with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
                _ip("netns", "del", self.created.pop())

    def __enter__(self) -> Topology:
        return self.create()

    def __exit__(self, *_: object) -> None:
        self.remove()
