"""In-process ``flwr ls --run-id``: the Control API's ``ListRuns`` over one gRPC channel.

Each ``flwr ls`` process costs ~1.3 CPU-seconds of imports, which the ClientApps of a
2-core machine feel; this asks the same RPC and formats the status like the CLI.
"""

from __future__ import annotations

from pathlib import Path

from fedtna.deploy.errors import DeploymentError


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
