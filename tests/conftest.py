"""Shared test helpers: compose the real Hydra config; run strategies in-process (no Ray)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two test workers share the machine's cores (pyproject's -n 2): one torch thread each, also in the
    # runs they start, as oversubscribed threads spin and crawl. Set before torch is imported.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch
from flwr.app import Context, Error, Message, RecordDict
from flwr.serverapp import Grid

from fedtna.config import RunConfig
from fedtna.config.entry import compose_run_config as compose_typed
from fedtna.fl.client_app import make_client_app

FAST = ["num_clients=4", "num_rounds=2", "local_epochs=1", "batch_size=64", "progress=false", "model=mlp"]


def compose_run_config(output_dir: Path, *overrides: str) -> RunConfig:
    """The typed run config exactly as ``python -m fedtna.run`` builds it."""
    return compose_typed(list(overrides), output_dir)


class InProcessGrid(Grid):
    """A Grid that delivers messages straight to a ClientApp in this process (no Ray).

    Node ids are deliberately not the partition ids, as on a real deployment, and replies
    come back in reversed order: arrival order must not matter.
    """

    def __init__(self, config: RunConfig | None, num_nodes: int, run_config: dict[str, Any] | None = None) -> None:
        self.client_app = make_client_app(config)
        self.contexts = {
            7000 + 13 * partition: Context(run_id=1, node_id=7000 + 13 * partition,
                                           node_config={"partition-id": partition, "num-partitions": num_nodes},
                                           state=RecordDict(), run_config=run_config or {})
            for partition in range(num_nodes)
        }
        self.delivered: list[Message] = []

    def set_run(self, run: Any) -> None:
        self._run = run

    @property
    def run(self) -> Any:
        return getattr(self, "_run", None)

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return Message(content=content, message_type=message_type, dst_node_id=dst_node_id, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise NotImplementedError

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise NotImplementedError

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        replies = []
        for message in messages:
            self.delivered.append(message)
            try:
                replies.append(self.client_app(message, self.contexts[message.metadata.dst_node_id]))
            except Exception as error:  # noqa: BLE001 - as Flower's runtime does: a client exception is an error reply
                replies.append(Message(Error(code=0, reason=f"{type(error).__name__}: {error}"), reply_to=message))
        return list(reversed(replies))


@pytest.fixture
def run_config_factory(tmp_path: Path):
    """Build typed run configs in a fresh output directory per call."""
    counter = iter(range(1000))

    def factory(*overrides: str) -> RunConfig:
        return compose_run_config(tmp_path / f"run{next(counter)}", *FAST, *overrides)

    return factory


@pytest.fixture
def one_torch_thread():
    """Tiny models run fastest on one thread, and a busy shared CPU makes two threads crawl."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@dataclass(frozen=True)
class EntryResult:
    """What a Hydra entry point (``fedtna.run``, ``fedtna.lmc``) did when called in this process."""

    returncode: int
    stderr: str


def run_entry_in_process(module: str, argv: list[str], capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> EntryResult:
    """``python -m <module> <argv>`` in this process: the same ``main()``, its exit code and stderr,
    without paying an interpreter start and the imports for every bad-input case."""
    import importlib

    from hydra.core.global_hydra import GlobalHydra

    main = importlib.import_module(module).main
    monkeypatch.setattr(sys, "argv", [module, *argv])
    GlobalHydra.instance().clear()
    capsys.readouterr()
    code: int | str | None = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code
    finally:
        GlobalHydra.instance().clear()
    return EntryResult(code if isinstance(code, int) else 1, capsys.readouterr().err)


LONGEST_FIRST = ("tests/test_deploy_netns.py",)  # one file of several minutes on one worker: it must start first


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest work first, so the two workers finish together (xdist hands out whole files in the order
    of their first test, pyproject's --dist loadfile --no-loadscope-reorder): the network-namespace module,
    then files with tests marked slow, then the rest; a stable sort keeps every module's own order."""

    def rank(item: pytest.Item) -> int:
        if item.nodeid.startswith(LONGEST_FIRST):
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)
