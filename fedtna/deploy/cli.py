"""Run fedtna as a real Flower deployment: one SuperLink + one SuperNode per client over gRPC.

    fedtna-deploy num_clients=2 num_rounds=2 strategy=fedpfn model=mlp

Arguments are Hydra overrides, exactly as for ``python -m fedtna.run`` (the same
``fedtna/conf`` tree). Everything runs on 127.0.0.1 with free ports: this starts
``flower-superlink`` and ``num_clients`` ``flower-supernode`` processes (``--node-config
"partition-id=i num-partitions=N"``), submits the ServerApp/ClientApp of the installed fedtna
package with ``flwr run <app> <connection> --run-config <toml> --format json`` (the whole
resolved config travels as JSON in the run-config key ``cfg-json``), polls the run status
until the run finished and always stops the daemons. Exit status 0 only for
``finished:completed``; a failed run exits 1 and prints the last lines of ``flwr log``;
a bad config prints one ``error:`` line and exits 2.

Results (written by the ServerApp) land in ``--output-dir`` (default
``outputs/deploy/<date>/<time>_<strategy>``): metrics.jsonl, metrics.csv, summary.json,
model.pt, plus config.json and label_distribution.png; daemon logs (the ClientApps print
into the SuperNode logs), the run-config TOML and deploy.json (run id, timings) in
``<output-dir>/deploy/``.

TLS: ``bash scripts/make_certs.sh certs`` then ``--certs certs`` (Fleet and Control APIs
over TLS; the CA certificate is given to the SuperNodes and to the ``flwr`` CLI).
SuperNode authentication: add ``--auth`` (needs ``--certs``). One ECDSA P-384 key pair per
SuperNode is made (OpenSSH format, as Flower reads it), each public key is registered with
``flwr supernode register`` before the SuperNodes start, each SuperNode gets
``--auth-supernode-private-key``, and the SuperLink (``--enable-supernode-auth``) refuses
any node whose key was not registered.

A SuperNode lost after the first round does not stop the run: Flower answers messages to it
with errors once its heartbeat expires (at most ~60 s), the round goes on with the others
and ``failed_clients`` counts it. The exit status still says whether the run completed.
A SuperLink that dies takes the run with it (its ServerApp runs under it): fedtna-deploy
exits 1 saying so and which round is checkpointed; ``fedtna-deploy resume=<output dir>``
continues the run from there in the same folder (its saved config; a finished run is not rerun).

Across real machines
--------------------
``--print-commands`` writes the run-config TOML, stages the Flower app next to it and
prints the commands instead of running anything. Install the same fedtna version into
the same kind of venv everywhere, with ``export FLWR_TELEMETRY_ENABLED=0
FLWR_DISABLE_UPDATE_CHECK=1 GRPC_ENABLE_FORK_SUPPORT=0`` and ``<venv>/bin`` on PATH
(the daemons start flower-superexec/flwr-serverapp/flwr-clientapp by name).

1. SuperLink host (the ServerApp runs here, so ``output_dir`` is a path on this host)::

       flower-superlink --insecure --fleet-api-address 0.0.0.0:9092 \\
           --control-api-address 0.0.0.0:9093 --serverappio-api-address 127.0.0.1:9091 \\
           --disable-runtime-dependency-installation

2. Client machines: one SuperNode per partition, one per GPU, each with its own
   ClientAppIo port; partition ids 0..num_clients-1 must all be served exactly once::

       CUDA_VISIBLE_DEVICES=0 flower-supernode --insecure --superlink <superlink-host>:9092 \\
           --clientappio-api-address 127.0.0.1:9094 --node-config "partition-id=0 num-partitions=4"
       CUDA_VISIBLE_DEVICES=1 flower-supernode --insecure --superlink <superlink-host>:9092 \\
           --clientappio-api-address 127.0.0.1:9095 --node-config "partition-id=1 num-partitions=4"

3. Submitting machine: ``$FLWR_HOME/config.toml`` (default ~/.flwr/config.toml)::

       [superlink]
       default = "fedtna-remote"
       [superlink.fedtna-remote]
       address = "<superlink-host>:9093"     # the Control API
       insecure = true                       # or: root-certificates = "/abs/path/ca.crt"

   then ``flwr run <output-dir>/deploy/fedtna-app fedtna-remote --run-config <toml> --format json``,
   ``flwr ls fedtna-remote --run-id <id> --format json`` (wait for "finished:completed";
   ``flwr run`` itself exits 0 even when the run fails) and ``flwr log <id> fedtna-remote --show``.

With TLS replace ``--insecure`` by ``--ssl-ca-certfile ca.crt --ssl-certfile server.pem
--ssl-keyfile server.key`` on the SuperLink (the certificate's SAN must name the SuperLink
host: ``SUPERLINK_SAN="IP:10.0.0.5,DNS:link.example" bash scripts/make_certs.sh certs``) and by
``--root-certificates ca.crt`` on the SuperNodes. Keep ports 9091 and 9094+ on 127.0.0.1;
only 9092 (SuperNodes) and 9093 (CLI) need to be reachable from other hosts.
With ``--auth`` too, ``--print-commands`` writes the key pairs to ``<output-dir>/deploy/keys``
and prints the ``flwr supernode register`` lines (run them before the SuperNodes start) and
the SuperNode commands with ``--auth-supernode-private-key`` (copy each private key to its machine).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
from pathlib import Path
from types import FrameType

from fedtna.config import RunConfig
from fedtna.deploy.app import APP_DIR_NAME, stage_app
from fedtna.deploy.auth import make_node_keys
from fedtna.deploy.commands import AUTH_NEEDS_TLS, commands_for
from fedtna.deploy.errors import DeploymentError
from fedtna.deploy.local import DeployResult, deploy_local
from fedtna.deploy.run_config import compose_run_config, write_run_config_toml
from fedtna.errors import FedtnaError
from fedtna.fl.resume import resolve_resume

DEPLOYMENT_FAILED_EXIT = 1
USAGE_ERROR_EXIT = 2
SIGTERM_EXIT = 128 + signal.SIGTERM


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: Hydra overrides plus the deployment options."""
    summary, details = __doc__.split("\n\n", 1)
    parser = argparse.ArgumentParser(prog="fedtna-deploy", description=summary, epilog=details,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. num_clients=4 strategy=fedpfn")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where the ServerApp writes results (default outputs/deploy/<date>/<time>_<strategy>)")
    parser.add_argument("--certs", type=Path, default=None,
                        help="directory with ca.crt, server.pem, server.key (scripts/make_certs.sh): use TLS")
    parser.add_argument("--auth", action="store_true",
                        help="SuperNode authentication (needs --certs): make, register and use one key per SuperNode")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds to wait for the run before stopping it (default: no limit)")
    parser.add_argument("--no-prepare", action="store_true",
                        help="skip the local validation/plot step before starting the daemons")
    parser.add_argument("--print-commands", action="store_true",
                        help="only write the run-config TOML, stage the app and print the multi-machine commands")
    parser.add_argument("--superlink-host", default="<superlink-host>",
                        help="host name used in --print-commands")
    return parser.parse_args(argv)


def print_commands(config: RunConfig, superlink_host: str, certs_dir: Path | None, auth: bool = False) -> None:
    """Write the run-config TOML, the staged app (and with ``auth`` the node keys) under
    ``<output_dir>/deploy``; print the commands."""
    deploy_dir = Path(config.output_dir) / "deploy"
    toml_path = write_run_config_toml(config, deploy_dir / "run_config.toml")
    shutil.rmtree(deploy_dir / APP_DIR_NAME, ignore_errors=True)
    app_dir = stage_app(deploy_dir / APP_DIR_NAME)
    node_keys = make_node_keys(deploy_dir / "keys", config.num_clients) if auth else None
    print(f"# run config written to {toml_path} (output_dir = {config.output_dir} on the SuperLink host)")
    if node_keys:
        print(f"# SuperNode key pairs in {deploy_dir / 'keys'} (private keys: keep them secret)")
    print("\n".join(commands_for(toml_path, config.num_clients, superlink_host, certs_dir, app_dir, node_keys)))


def report(result: DeployResult) -> None:
    """Where the results are (stderr) and the run summary as one JSON line (stdout)."""
    summary = json.loads(result.summary_path.read_text()) if result.summary_path.is_file() else {}
    print(f"run {result.run_id}: {result.status}", file=sys.stderr)
    print(f"  metrics : {result.metrics_path}", file=sys.stderr)
    print(f"  summary : {result.summary_path}", file=sys.stderr)
    print(f"  logs    : {result.log_dir}", file=sys.stderr)
    print(f"  timings : {json.dumps(result.timings)}", file=sys.stderr)
    if result.lost_supernodes:
        print(f"  lost    : {', '.join(result.lost_supernodes)} (counted in failed_clients)", file=sys.stderr)
    print(json.dumps({**summary, "run_id": result.run_id, "status": result.status,
                      "output_dir": str(result.output_dir), "lost_supernodes": result.lost_supernodes}))


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM becomes SystemExit, so the deployment's cleanup stops the daemons (as Ctrl-C does)."""
    sys.exit(SIGTERM_EXIT)


def main(argv: list[str] | None = None) -> int:
    """``fedtna-deploy``: 0 when the run finished completed, 1 when the deployment failed, 2 on bad input."""
    args = parse_args(argv)
    if args.auth and args.certs is None:
        print(f"error: {AUTH_NEEDS_TLS}", file=sys.stderr)
        return USAGE_ERROR_EXIT
    previous_handler = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        config = compose_run_config(args.overrides, args.output_dir)
        config, finished = resolve_resume(config, args.overrides)
        if finished is not None:  # resume= names a run that completed: nothing left to run
            print(json.dumps(finished))
            return 0
        if args.print_commands:
            print_commands(config, args.superlink_host, args.certs, args.auth)
            return 0
        print(f"deploying {config.strategy_spec.name}: {config.num_clients} SuperNodes, "
              f"{config.num_rounds} rounds -> {config.output_dir}", file=sys.stderr)
        result = deploy_local(config, timeout=args.timeout, validate=not args.no_prepare, certs_dir=args.certs,
                              auth=args.auth)
    except DeploymentError as error:
        print(f"deployment failed: {error}", file=sys.stderr)
        return DEPLOYMENT_FAILED_EXIT
    except FedtnaError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR_EXIT
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    report(result)
    return 0
