"""SuperNode authentication: one ECDSA key pair per SuperNode, registered with the SuperLink.

Flower 1.32.1 reads the keys in OpenSSH format: ``flower-supernode
--auth-supernode-private-key <file>`` loads an OpenSSH private key
(``cryptography``'s ``load_ssh_private_key``) and ``flwr supernode register <file>`` an
OpenSSH public key on a NIST curve. These are the files ``ssh-keygen -t ecdsa -b 384 -N ""
-f <file>`` writes; here ``cryptography`` (a Flower dependency) writes them, curve P-384.

A SuperLink started with ``--enable-supernode-auth`` (TLS required) accepts only SuperNodes
whose public key was registered through its Control API (``flwr supernode register``). An
unregistered key is refused when the SuperNode activates ("No SuperNode found with the
given public key") and that SuperNode exits with an error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedtna.deploy.errors import DeploymentError

PUBLIC_SUFFIX = ".pub"


@dataclass(frozen=True)
class NodeKey:
    """The key pair files of one SuperNode."""

    name: str
    private_key: Path
    public_key: Path


def make_node_key(directory: str | Path, name: str) -> NodeKey:
    """Write ``<directory>/<name>`` (OpenSSH private key, mode 0600) and ``<name>.pub``; existing ones are kept."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / name, directory / f"{name}{PUBLIC_SUFFIX}"
    if private_path.is_file() and public_path.is_file():
        return NodeKey(name, private_path.resolve(), public_path.resolve())
    key = ec.generate_private_key(ec.SECP384R1())
    private_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                      serialization.NoEncryption())
    public_bytes = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_bytes)
    public_path.write_bytes(public_bytes + f" fedtna-{name}\n".encode())
    return NodeKey(name, private_path.resolve(), public_path.resolve())


def make_node_keys(directory: str | Path, count: int, prefix: str = "supernode") -> list[NodeKey]:
    """Key pairs ``<prefix>-0 .. <prefix>-<count-1>`` in ``directory``."""
    return [make_node_key(directory, f"{prefix}-{i}") for i in range(count)]


def check_node_key(private_key: str | Path) -> None:
    """Raise unless ``private_key`` is an OpenSSH EC private key (what flower-supernode accepts)."""
    try:
        key = serialization.load_ssh_private_key(Path(private_key).read_bytes(), password=None)
    except (OSError, ValueError) as error:
        raise DeploymentError(f"{private_key} is not an OpenSSH private key: {error}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise DeploymentError(f"{private_key} is not an EC key (Flower needs ECDSA on a NIST curve)")


def key_commands(keys: Sequence[NodeKey], connection: str) -> list[str]:
    """``flwr supernode register`` lines for the keys (run where the flwr CLI reaches the Control API)."""
    return [f"flwr supernode register {key.public_key} {connection}" for key in keys]
