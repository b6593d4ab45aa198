"""Real Flower deployment (SuperLink + SuperNodes over gRPC) of the same ServerApp and ClientApp."""

from fedtna.deploy.app import app_pyproject, stage_app
from fedtna.deploy.auth import NodeKey, make_node_key, make_node_keys
from fedtna.deploy.commands import commands_for
from fedtna.deploy.errors import DeploymentError
from fedtna.deploy.local import COMPLETED, DeployResult, LocalDeployment, deploy_local
from fedtna.deploy.processes import free_ports
from fedtna.deploy.run_config import (
    compose_run_config,
    default_output_dir,
    read_run_config_toml,
    write_run_config_toml,
)

__all__ = [
    "COMPLETED", "DeployResult", "DeploymentError", "LocalDeployment", "NodeKey", "app_pyproject", "commands_for",
    "compose_run_config", "default_output_dir", "deploy_local", "free_ports", "make_node_key", "make_node_keys",
    "read_run_config_toml", "stage_app", "write_run_config_toml",
]
