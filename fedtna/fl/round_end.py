"""What the server does with a finished round, one small function each: evaluate, record,
check for divergence, checkpoint (``server_app.run_server`` calls them in that order)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
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


def central_evaluation(result: RoundResult, config: RunConfig, model: nn.Module,
                       bundle: DatasetBundle) -> tuple[dict[str, float], list[str]]:
    """The test metrics of the global model when due ({} otherwise), and what is not finite."""
    diverged = non_finite_arrays(result.arrays)
    due = result.server_round % config.eval_every == 0 or result.server_round == config.num_rounds
    if diverged or not due:
        return {}, diverged
    model.load_state_dict(result.arrays.to_torch_state_dict())
    loss, accuracy = evaluate(model, bundle.test_x, bundle.test_y, config.eval_batch_size)
    return {"test_accuracy": accuracy, "test_loss": loss}, [] if math.isfinite(loss) else ["the test loss"]


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
