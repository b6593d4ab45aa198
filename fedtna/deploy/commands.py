"""Command lines of the Flower daemons: argv for local ones, printable shell lines for many machines."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from fedtna.deploy.auth import NodeKey, key_commands
from fedtna.deploy.errors import DeploymentError
from fedtna.deploy.flwr_cli import FLOWER_ENV

SERVERAPPIO_PORT = 9091
FLEET_PORT = 9092
CONTROL_PORT = 9093
FIRST_CLIENTAPPIO_PORT = 9094
REMOTE_CONNECTION = "fedtna-remote"
AUTH_NEEDS_TLS = ("SuperNode authentication needs TLS: make certificates with `bash scripts/make_certs.sh certs` "
                  "and add --certs certs")


def superlink_argv(fleet: str, control: str, serverappio: str, certs_dir: str | Path | None = None,
                   executable: str = "flower-superlink", auth: bool = False,
                   database: str | Path | None = None) -> list[str]:
    """``flower-superlink`` command line; ``--insecure`` unless ``certs_dir`` holds ca.crt/server.pem/server.key.

    ``auth``: ``--enable-supernode-auth`` (only registered SuperNode keys may connect; needs TLS).
    ``database``: keep the SuperLink's state (runs, nodes, keys) in this SQLite file (``--database``),
    so a restarted SuperLink finds it; without it the state lives in memory.
    """
    argv = [executable]
    if certs_dir is None:
        if auth:
            raise DeploymentError(AUTH_NEEDS_TLS)
        argv.append("--insecure")
    else:
        certs = Path(certs_dir)
        argv += ["--ssl-ca-certfile", str(certs / "ca.crt"), "--ssl-certfile", str(certs / "server.pem"),
                 "--ssl-keyfile", str(certs / "server.key")]
    if auth:
        argv.append("--enable-supernode-auth")
    if database is not None:
        argv += ["--database", str(database)]
    return [*argv, "--fleet-api-address", fleet, "--control-api-address", control,
            "--serverappio-api-address", serverappio, "--disable-runtime-dependency-installation"]


def supernode_argv(superlink_fleet: str, clientappio: str, partition_id: int, num_partitions: int,
                   certs_dir: str | Path | None = None, executable: str = "flower-supernode",
                   private_key: str | Path | None = None) -> list[str]:
    """``flower-supernode`` command line serving partition ``partition_id`` of ``num_partitions``.

    ``private_key``: the node's OpenSSH private key (``--auth-supernode-private-key``) for a SuperLink
    with SuperNode authentication.
    """
    argv = [executable]
    argv += ["--insecure"] if certs_dir is None else ["--root-certificates", str(Path(certs_dir) / "ca.crt")]
    if private_key is not None:
        argv += ["--auth-supernode-private-key", str(private_key)]
    return [*argv, "--superlink", superlink_fleet, "--clientappio-api-address", clientappio,
            "--node-config", f"partition-id={partition_id} num-partitions={num_partitions}"]


def commands_for(run_config_toml: str | Path, num_supernodes: int, superlink_host: str = "<superlink-host>",
                 certs_dir: str | Path | None = None, app_dir: str | Path = ".",
                 node_keys: Sequence[NodeKey] | None = None) -> list[str]:
    """The commented shell commands of a multi-machine deployment (``--print-commands``).

    ``node_keys`` (one per SuperNode) turns on SuperNode authentication: the SuperLink gets
    ``--enable-supernode-auth``, each public key is registered with ``flwr supernode register``
    before its SuperNode starts, and each SuperNode gets its private key.
    """
    auth = node_keys is not None
    if node_keys is not None and len(node_keys) != num_supernodes:
        raise DeploymentError(f"{len(node_keys)} SuperNode keys for {num_supernodes} SuperNodes")
    env = " ".join(f"{key}={value}" for key, value in FLOWER_ENV.items())
    superlink = superlink_argv(f"0.0.0.0:{FLEET_PORT}", f"0.0.0.0:{CONTROL_PORT}",
                               f"127.0.0.1:{SERVERAPPIO_PORT}", certs_dir, auth=auth)
    lines = [f"# on every machine: export {env}; PATH=<venv>/bin:$PATH",
             f"# SuperLink host:\n{shlex.join(superlink)}"]
    tls = "insecure = true" if certs_dir is None else "root-certificates = \"<abs path of ca.crt>\""
    connection = (f"($FLWR_HOME/config.toml: [superlink.{REMOTE_CONNECTION}] "
                  f"address = \"{superlink_host}:{CONTROL_PORT}\", {tls})")
    if node_keys is not None:
        lines.append(f"# submitting machine {connection}, once, before the SuperNodes start:\n"
                     + "\n".join(key_commands(node_keys, REMOTE_CONNECTION)))
    for partition_id in range(num_supernodes):
        key, comment = None, "# client machine, one SuperNode per GPU"
        if node_keys is not None:
            node_key = node_keys[partition_id]
            key = f"keys/{node_key.name}"
            comment += f" (copy {node_key.private_key} there as {key}, mode 600)"
        supernode = supernode_argv(f"{superlink_host}:{FLEET_PORT}",
                                   f"127.0.0.1:{FIRST_CLIENTAPPIO_PORT + partition_id}",
                                   partition_id, num_supernodes, certs_dir, private_key=key)
        lines.append(f"{comment}:\nCUDA_VISIBLE_DEVICES=<gpu> {shlex.join(supernode)}")
    submit = ["flwr", "run", str(app_dir), REMOTE_CONNECTION, "--run-config", str(run_config_toml),
              "--format", "json"]
    lines.append(f"# submitting machine {connection}:\n{shlex.join(submit)}")
    return lines
