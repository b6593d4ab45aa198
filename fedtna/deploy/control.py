"""In-process ``flwr ls --run-id``: the Control API's ``ListRuns`` over one gRPC channel.

Each ``flwr ls`` process costs ~1.3 CPU-seconds of imports, which the ClientApps of a
2-core machine feel; this asks the same RPC and formats the status like the CLI.
:class:`ControlProcess` asks it from one long-lived child process started behind a command
prefix (e.g. ``ip netns exec <ns>``), for a SuperLink this process cannot reach itself.
"""

from __future__ import annotations

import select
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from fedtna.deploy.errors import DeploymentError

ERROR_PREFIX = "error: "


class ControlUnavailableError(DeploymentError):
    """The status helper process failed to answer (the ``flwr`` CLI may still)."""


class ControlClient:
    """A client of a SuperLink's Control API that asks for run statuses."""

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
        """Close the gRPC channel."""
        self.channel.close()


class ControlProcess:
    """A :class:`ControlClient` in a child process started as ``<prefix> python -m fedtna.deploy.control``.

    It reads run ids on stdin and answers one status line each; a missing answer within
    ``timeout`` seconds (the helper is then ended) or an error line raises :class:`ControlUnavailableError`.
    """

    def __init__(self, prefix: Sequence[str], address: str, root_certificates: str | Path | None,
                 env: Mapping[str, str]) -> None:
        argv = [*prefix, sys.executable, "-m", "fedtna.deploy.control", address, str(root_certificates or "")]
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True, env=dict(env))

    def status(self, run_id: int, timeout: float = 60.0) -> str:
        """The run's status, as :meth:`ControlClient.status` says it in the child."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(f"{run_id}\n")
            self.process.stdin.flush()
        except OSError as error:
            raise ControlUnavailableError(f"the status helper exited ({error})") from None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:  # a late answer would be taken for the next question's: end the helper
            self.close()
            raise ControlUnavailableError(f"the status helper did not answer within {timeout:.0f} s")
        line = self.process.stdout.readline().strip()
        if not line or line.startswith(ERROR_PREFIX):
            raise ControlUnavailableError(line.removeprefix(ERROR_PREFIX) or "the status helper did not answer")
        return line

    def close(self) -> None:
        """End the child process."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fedtna.deploy.control <address> [<ca.crt>]``: one status line per run id read on stdin."""
    address, certificates = [*(argv if argv is not None else sys.argv[1:]), ""][:2]
    client = ControlClient(address, certificates or None)
    try:
        for line in sys.stdin:
            try:
                answer = client.status(int(line))
            except Exception as error:  # noqa: BLE001 - every failure becomes one error line for the parent
                answer = ERROR_PREFIX + (str(error).strip().splitlines() or [type(error).__name__])[0]
            print(answer, flush=True)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
