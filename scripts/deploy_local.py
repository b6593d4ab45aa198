#!/usr/bin/env python
"""Run fedtna as a real Flower deployment: one SuperLink + one SuperNode per client over gRPC.

    python scripts/deploy_local.py num_clients=2 num_rounds=2 strategy=fedpfn model=mlp

Arguments are Hydra overrides, exactly as for ``python -m fedtna.run`` (same conf/ tree).
Everything runs on 127.0.0.1 with free ports: the script starts ``flower-superlink`` and
``num_clients`` ``flower-supernode`` processes (``--node-config "partition-id=i
num-partitions=N"``), submits the ServerApp/ClientApp of this repository with
``flwr run <app> <connection> --run-config <toml> --format json`` (the whole resolved
config travels as JSON in the run-config key ``cfg-json``), polls ``flwr ls`` until the
run finished and always stops the daemons. Exit status 0 only for ``finished:completed``;
a failed run exits 1 and prints the last lines of ``flwr log``.

Results (written by the ServerApp) land in ``--output-dir`` (default
``outputs/deploy/<date>/<time>_<strategy>``): metrics.jsonl, metrics.csv, summary.json,
model.pt, plus config.json and label_distribution.png; daemon logs (the ClientApps print
into the SuperNode logs), the run-config TOML and deploy.json (run id, timings) in
``<output-dir>/deploy/``.

TLS: ``bash scripts/make_certs.sh certs`` then ``--certs certs`` (Fleet and Control APIs
over TLS; the CA certificate is given to the SuperNodes and to the ``flwr`` CLI).

Across real machines
--------------------
``--print-commands`` writes the run-config TOML and prints these commands instead of
running anything. Use the same repository checkout and venv everywhere, with
``export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 GRPC_ENABLE_FORK_SUPPORT=0``
and ``<venv>/bin`` on PATH (the daemons start flower-superexec/flwr-serverapp/flwr-clientapp
by name).

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

   then ``flwr run . fedtna-remote --run-config <toml> --format json``,
   ``flwr ls fedtna-remote --run-id <id> --format json`` (wait for "finished:completed";
   ``flwr run`` itself exits 0 even when the run fails) and ``flwr log <id> fedtna-remote --show``.

With TLS replace ``--insecure`` by ``--ssl-ca-certfile ca.crt --ssl-certfile server.pem
--ssl-keyfile server.key`` on the SuperLink (the certificate's SAN must name the SuperLink
host: ``SUPERLINK_SAN="IP:10.0.0.5,DNS:link.example" bash scripts/make_certs.sh certs``) and by
``--root-certificates ca.crt`` on the SuperNodes. Keep ports 9091 and 9094+ on 127.0.0.1;
only 9092 (SuperNodes) and 9093 (CLI) need to be reachable from other hosts.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fedtna.deploy import (  # noqa: E402
    DeploymentError, commands_for, compose_run_config, deploy_local, write_run_config_toml,
)
from fedtna.errors import FedtnaError  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. num_clients=4 strategy=fedpfn")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where the ServerApp writes results (default outputs/deploy/<date>/<time>_<strategy>)")
    parser.add_argument("--certs", type=Path, default=None,
                        help="directory with ca.crt, server.pem, server.key (scripts/make_certs.sh): use TLS")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds to wait for the run before stopping it (default: no limit)")
    parser.add_argument("--no-prepare", action="store_true",
                        help="skip the local validation/plot step before starting the daemons")
    parser.add_argument("--print-commands", action="store_true",
                        help="only write the run-config TOML and print the multi-machine commands")
    parser.add_argument("--superlink-host", default="<superlink-host>",
                        help="host name used in --print-commands")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM -> SystemExit, so the deployment's cleanup stops the daemons (Ctrl-C already does)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run_config = compose_run_config(args.overrides, args.output_dir)
        output_dir = Path(run_config["output_dir"])
        if args.print_commands:
            toml_path = write_run_config_toml(run_config, output_dir / "deploy" / "run_config.toml")
            print(f"# run config written to {toml_path} (output_dir = {output_dir} on the SuperLink host)")
            print("\n".join(commands_for(toml_path, int(run_config["num_clients"]), args.superlink_host,
                                         args.certs)))
            return 0
        print(f"deploying {run_config['strategy']['name']}: {run_config['num_clients']} SuperNodes, "
              f"{run_config['num_rounds']} rounds -> {output_dir}", file=sys.stderr)
        result = deploy_local(run_config, timeout=args.timeout, prepare=not args.no_prepare,
                              certs_dir=args.certs)
    except DeploymentError as error:
        print(f"deployment failed: {error}", file=sys.stderr)
        return 1
    except FedtnaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = json.loads(result.summary_path.read_text()) if result.summary_path.is_file() else {}
    print(f"run {result.run_id}: {result.status}", file=sys.stderr)
    print(f"  metrics : {result.metrics_path}", file=sys.stderr)
    print(f"  summary : {result.summary_path}", file=sys.stderr)
    print(f"  logs    : {result.log_dir}", file=sys.stderr)
    print(f"  timings : {json.dumps(result.timings)}", file=sys.stderr)
    print(json.dumps({**summary, "run_id": result.run_id, "status": result.status,
                      "output_dir": str(result.output_dir)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
