"""The one error type of a deployment."""

from fedtna.errors import FedtnaError


class DeploymentError(FedtnaError):
    """A daemon failed to start, or the Flower run did not finish as completed."""
