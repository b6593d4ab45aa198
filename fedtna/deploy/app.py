"""Stage the Flower app (the directory ``flwr run`` bundles into a FAB) from the installed fedtna package.

``flwr run`` walks the whole directory it is given, so runs are submitted from a staged
copy holding only the package's .py and .yaml files (the Hydra tree ``fedtna/conf``
included) and a generated pyproject.toml that names the ServerApp and ClientApp. Nothing
of a source checkout is needed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import tomli_w

import fedtna
from fedtna.deploy.errors import DeploymentError
from fedtna.fl.client_app import OVERRIDES_KEY, RUN_CONFIG_KEY

APP_SUFFIXES = (".py", ".yaml")
APP_DIR_NAME = "fedtna-app"  # flwr wants letters, digits and hyphens
SERVER_APP = "fedtna.fl.server_app:app"
CLIENT_APP = "fedtna.fl.client_app:app"


def installed_package_dir() -> Path:
    """The directory of the fedtna package this interpreter imports."""
    return Path(fedtna.__file__).resolve().parent


def app_pyproject() -> dict[str, Any]:
    """The minimal pyproject.toml of the Flower app: project metadata, the two components, the run-config keys.

    ``cfg-json`` carries a whole resolved config (fedtna-deploy); when it is empty the apps compose
    the Hydra ``overrides`` string instead (``flwr run <app> --run-config 'overrides="..."'``).
    """
    return {
        "build-system": {"requires": ["setuptools>=68"], "build-backend": "setuptools.build_meta"},
        "project": {
            "name": "fedtna",
            "version": fedtna.__version__,
            "description": "fedtna ServerApp and ClientApp, staged by fedtna.deploy",
            "license": {"text": "Apache-2.0"},
        },
        "tool": {"flwr": {"app": {
            "publisher": "fedtna",
            "components": {"serverapp": SERVER_APP, "clientapp": CLIENT_APP},
            "config": {RUN_CONFIG_KEY: "", OVERRIDES_KEY: ""},
        }}},
    }


def _app_files(package_dir: Path) -> list[Path]:
    """The package's .py and .yaml files, caches left out."""
    return sorted(file for file in package_dir.rglob("*")
                  if file.is_file() and file.suffix in APP_SUFFIXES and "__pycache__" not in file.parts)


def stage_app(dest: str | Path, package_dir: str | Path | None = None) -> Path:
    """Write the app directory to ``dest`` (absent or empty): ``fedtna/`` and pyproject.toml; returns it."""
    dest = Path(dest)
    source = Path(package_dir) if package_dir is not None else installed_package_dir()
    if dest.exists() and any(dest.iterdir()):
        raise DeploymentError(f"cannot stage the Flower app into {dest}: it is not empty")
    if not (source / "__init__.py").is_file():
        raise DeploymentError(f"{source} is not the fedtna package (no __init__.py)")
    for file in _app_files(source):
        target = dest / "fedtna" / file.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
    (dest / "pyproject.toml").write_text(tomli_w.dumps(app_pyproject()))
    return dest
