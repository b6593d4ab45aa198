"""Command lines of the Flower daemons: argv for local ones, printable shell lines for many machines."""

from __future__ import annotations

import shlex
from pathlib import Path

from fedtna.deploy.flwr_cli import FLOWER_ENV

SERVERAPPIO_PORT = 9091
FLEET_PORT = 9092
CONTROL_PORT = 9093
FIRST_CLIENTAPPIO_PORT = 9094
REMOTE_CONNECTION = "fedtna-remote"


def superlink_argv(fleet: str, control: str, serverappio: str, certs_dir: str | Path | None = None,
                   executable: str = "flower-superlink") -> list[str]:
    """``flower-superlink`` command line; ``--insecure`` unless ``certs_dir`` holds ca.crt/server.pem/server.key."""
    argv = [executable]
    if certs_dir is None:
        argv.append("--insecure")
    else:
        certs = Path(certs_dir)
        argv += ["--ssl-ca-certfile", str(certs / "ca.crt"), "--ssl-certfile", str(certs / "server.pem"),
                 "--ssl-keyfile", str(certs / "server.key")]
    return argv + ["--fleet-api-address", fleet, "--control-api-address", control,
                   "--serverappio-api-address", serverappio, "--disable-runtime-dependency-installation"]


def supernode_argv(superlink_fleet: str, clientappio: str, partition_id: int, num_partitions: int,
                   certs_dir: str | Path | None = None, executable: str = "flower-supernode") -> list[str]:
    """``flower-supernode`` command line serving partition ``partition_id`` of ``num_partitions``."""
    argv = [executable]
    argv += ["--insecure"] if certs_dir is None else ["--root-certificates", str(Path(certs_dir) / "ca.crt")]
    return argv + ["--superlink", superlink_fleet, "--clientappio-api-address", clientappio,
                   "--node-config", f"partition-id={partition_id} num-partitions={num_partitions}"]


def commands_for(run_config_toml: str | Path, num_supernodes: int, superlink_host: str = "<superlink-host>",
                 certs_dir: str | Path | None = None, app_dir: str | Path = ".") -> list[str]:
    """The commented shell commands of a multi-machine deployment (``--print-commands``)."""
    env = " ".join(f"{key}={value}" for key, value in FLOWER_ENV.items())
    superlink = superlink_argv(f"0.0.0.0:{FLEET_PORT}", f"0.0.0.0:{CONTROL_PORT}",
                               f"127.0.0.1:{SERVERAPPIO_PORT}", certs_dir)
    lines = [f"# on every machine: export {env}; PATH=<venv>/bin:$PATH",
             f"# SuperLink host:\n{shlex.join(superlink)}"]
    for partition_id in range(num_supernodes):
        supernode = supernode_argv(f"{superlink_host}:{FLEET_PORT}",
                                   f"127.0.0.1:{FIRST_CLIENTAPPIO_PORT + partition_id}",
                                   partition_id, num_supernodes, certs_dir)
        lines.append(f"# client machine, one SuperNode per GPU:\nCUDA_VISIBLE_DEVICES=<gpu> {shlex.join(supernode)}")
    tls = "insecure = true" if certs_dir is None else "root-certificates = \"<abs path of ca.crt>\""
    submit = ["flwr", "run", str(app_dir), REMOTE_CONNECTION, "--run-config", str(run_config_toml),
              "--format", "json"]
    lines.append(f"# submitting machine ($FLWR_HOME/config.toml: [superlink.{REMOTE_CONNECTION}] "
                 f"address = \"{superlink_host}:{CONTROL_PORT}\", {tls}):\n{shlex.join(submit)}")
    return lines
