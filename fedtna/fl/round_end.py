"""What the server does with a finished round, one small function each: evaluate, record,
check for divergence, checkpoint (``server_app.run_server`` calls them in that order)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord
from torch import nn

from fedtna.config import RunConfig
from fedtna.errors import RunDivergedError
from fedtna.fl.checkpoint import Checkpoint, capture_server_state, save_checkpoint
from fedtna.fl.client_report import NUM_EXAMPLES
from fedtna.fl.local_data import DatasetBundle
from fedtna.fl.results import RunRecorder
from fedtna.fl.rounds import RoundResult
from fedtna.training import evaluate


def non_finite_arrays(arrays: ArrayRecord) -> list[str]:
    """Names of floating-point arrays holding NaN or Inf."""
    return [key for key, array in arrays.items()
            if np.issubdtype((values := array.numpy()).dtype, np.floating) and not np.isfinite(values).all()]


def client_row(result: RoundResult) -> dict[str, Any]:
    """The clients' part of the round's metrics row (train, then evaluation metrics)."""
    row: dict[str, Any] = {**result.train_metrics, **result.evaluate_metrics}
    row.pop(NUM_EXAMPLES, None)
    return row


Examples = tuple[torch.Tensor, torch.Tensor]  # (inputs, labels)


def central_evaluation(result: RoundResult, config: RunConfig, model: nn.Module, bundle: DatasetBundle,
                       validation: Examples | None = None) -> tuple[dict[str, float], list[str]]:
    """The test metrics of the global model when due ({} otherwise), and what is not finite; with a
    ``validation`` set (``validation_fraction`` > 0) also ``val_accuracy`` and ``val_loss``."""
    diverged = non_finite_arrays(result.arrays)
    due = result.server_round % config.eval_every == 0 or result.server_round == config.num_rounds
    if diverged or not due:
        return {}, diverged
    model.load_state_dict(result.arrays.to_torch_state_dict())
    loss, accuracy = evaluate(model, bundle.test_x, bundle.test_y, config.eval_batch_size)
    metrics = {"test_accuracy": accuracy, "test_loss": loss}
    if validation is not None:
        val_loss, val_accuracy = evaluate(model, *validation, config.eval_batch_size)
        metrics.update(val_accuracy=val_accuracy, val_loss=val_loss)
    return metrics, [] if math.isfinite(loss) else ["the test loss"]


def check_divergence(server_round: int, diverged: list[str], config: RunConfig) -> None:
    """A RunDivergedError when anything of the round is not finite."""
    if diverged:
        raise RunDivergedError(f"round {server_round}: the run diverged ({', '.join(diverged[:3])} not finite); "
                               f"the learning rate (client lr={config.lr}, or a server optimizer's step) is "
                               "likely too high")


def checkpoint_round(result: RoundResult, config: RunConfig, recorder: RunRecorder, strategy: object) -> None:
    """Save a checkpoint when one is due (every ``checkpoint_every`` rounds and after the last)."""
    if result.server_round % config.checkpoint_every == 0 or result.server_round == config.num_rounds:
        arrays = {key: value.numpy() for key, value in result.arrays.items()}
        save_checkpoint(Path(config.output_dir), Checkpoint(result.server_round, arrays, recorder.rows,
                                                            capture_server_state(strategy)))
