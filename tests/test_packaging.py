"""Packaging: Flower stays on the 1.32 line, and constraints.txt pins every requirement of fedtna."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
FLWR_LINE = SpecifierSet(">=1.32,<1.33")  # Flower's gRPC transport: see the comment in pyproject.toml
LOCK_PYTHON = {"python_version": "3.11", "python_full_version": "3.11.7"}  # constraints.txt's interpreter


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements(extras: tuple[str, ...] = ("dev",)) -> list[Requirement]:
    """fedtna's own requirements on Python 3.11: the core plus ``extras``, ``fedtna[...]`` expanded."""
    table = project()
    texts, todo, seen = list(table["dependencies"]), list(extras), set()
    result = []
    while texts or todo:
        if not texts:
            extra = todo.pop()
            texts = [] if extra in seen else list(table["optional-dependencies"][extra])
            seen.add(extra)
            continue
        requirement = Requirement(texts.pop())
        if canonicalize_name(requirement.name) == "fedtna":
            todo += sorted(requirement.extras)
        elif requirement.marker is None or requirement.marker.evaluate(LOCK_PYTHON):
            result.append(requirement)
    return result


def locked() -> dict[str, str]:
    """constraints.txt as {normalised name: exact version}."""
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            assert pinned, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            pins[canonicalize_name(name)] = pinned
    return pins


def test_installed_flower_is_the_1_32_line() -> None:
    installed = version("flwr")
    assert installed in FLWR_LINE, (f"flwr {installed} is installed; fedtna needs the 1.32 line (gRPC transport): "
                                    'pip install -c constraints.txt -e ".[dev]"')


def test_pyproject_keeps_flower_on_the_1_32_line() -> None:
    flwr = [r for r in requirements(()) if canonicalize_name(r.name) == "flwr"]
    assert len(flwr) == 1 and "simulation" in flwr[0].extras
    admitted = [v for v in ("1.31.0", "1.32.0", "1.32.1", "1.32.9", "1.33.0", "1.40.0", "1.42.0")
                if flwr[0].specifier.contains(v, prereleases=False)]
    assert admitted and all(v in FLWR_LINE for v in admitted), f"{flwr[0]} admits {admitted}"
    assert locked()["flwr"] in FLWR_LINE


def test_constraints_pin_every_requirement_of_core_and_dev() -> None:
    pins = locked()
    reqs = requirements()
    assert {"torch", "flwr", "pytest", "optuna", "ruff", "uv"} <= {canonicalize_name(r.name) for r in reqs}
    floating = [str(r) for r in reqs if canonicalize_name(r.name) not in pins]
    assert not floating, f"constraints.txt does not pin {floating}; regenerate it (see its header)"
    outside = [f"{r} (locked {pins[canonicalize_name(r.name)]})" for r in reqs
               if not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)]
    assert not outside, f"constraints.txt pins versions pyproject.toml does not allow: {outside}"
