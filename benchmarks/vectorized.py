"""Sequential ``local_train`` per client vs ``vectorized_local_train``, side by side in one process.

For the MLP (MNIST-shaped 1x28x28, hidden 200-200) and the paper CNN (CIFAR-shaped 3x32x32):
10 clients of 512 examples each train one epoch of 16 steps of batch 32 (SGD, momentum 0.9,
weight decay 5e-4, a rho = 0.4 anchor mask), once client after client and once as one batched
model; interleaved repeats, median times, and the ratio sequential / vectorized (above 1: the
vectorized engine is faster). Also prints the largest weight difference between the two, as a
sanity check. No timed assertions.

    python benchmarks/vectorized.py [repeats] [device] [torch_threads]
"""

from __future__ import annotations

import copy
import statistics
import sys
import time

import torch
from torch import nn

from fedtna.masks import MaskSpec, draw_fixed_masks
from fedtna.models.cnn import CNN
from fedtna.models.mlp import MLP
from fedtna.training import OptimizerSettings, Phase, local_train
from fedtna.vectorized_training import ClientBatchJob, vectorized_local_train

CLIENTS = 10
STEPS = 16
BATCH = 32
SETTINGS = OptimizerSettings(name="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def client_data(shape: tuple[int, int, int], device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(STEPS * BATCH, *shape, generator=generator).to(device),
             torch.randint(0, 10, (STEPS * BATCH,), generator=generator).to(device)) for _ in range(CLIENTS)]


def sequential(model: nn.Module, data: list[tuple[torch.Tensor, torch.Tensor]],
               phases: list[Phase]) -> tuple[float, list[dict[str, torch.Tensor]]]:
    synchronize(next(model.parameters()).device)
    started = time.perf_counter()
    states = []
    for client, (inputs, labels) in enumerate(data):
        trained = copy.deepcopy(model)
        local_train(trained, inputs, labels, phases, SETTINGS, BATCH, torch.Generator().manual_seed(client))
        states.append(trained.state_dict())
    synchronize(next(model.parameters()).device)
    return time.perf_counter() - started, states


def vectorized(model: nn.Module, data: list[tuple[torch.Tensor, torch.Tensor]], phases: list[Phase],
               chunk: int) -> tuple[float, list[dict[str, torch.Tensor]]]:
    jobs = [ClientBatchJob(inputs, labels, phases, torch.Generator().manual_seed(client))
            for client, (inputs, labels) in enumerate(data)]
    synchronize(next(model.parameters()).device)
    started = time.perf_counter()
    result = vectorized_local_train(model, jobs, SETTINGS, BATCH, max_clients_per_chunk=chunk)
    synchronize(next(model.parameters()).device)
    return time.perf_counter() - started, result.states


def measure(name: str, model: nn.Module, shape: tuple[int, int, int], repeats: int, device: torch.device) -> None:
    model = model.to(device)
    data = client_data(shape, device)
    masks = draw_fixed_masks(model.named_parameters(), 1, MaskSpec(ratio=0.4, granularity="weight"))
    phases = [Phase(masks, STEPS)]
    sequential(model, data[:2], phases)  # warm-up
    vectorized(model, data[:2], phases, CLIENTS)
    chunks = (CLIENTS, CLIENTS // 2)
    times: dict[str, list[float]] = {"sequential": [], **{f"chunk {chunk}": [] for chunk in chunks}}
    difference = 0.0
    for _ in range(repeats):
        seconds, reference = sequential(model, data, phases)
        times["sequential"].append(seconds)
        for chunk in chunks:
            seconds, states = vectorized(model, data, phases, chunk)
            times[f"chunk {chunk}"].append(seconds)
            difference = max(difference, *(float((state[key] - ref[key]).abs().max())
                                            for state, ref in zip(states, reference, strict=True) for key in ref))
    base = statistics.median(times["sequential"])
    cells = [f"sequential {1000 * base:8.1f} ms"]
    for chunk in chunks:
        median = statistics.median(times[f"chunk {chunk}"])
        cells.append(f"vectorized(chunk {chunk:2d}) {1000 * median:8.1f} ms  RATIO {base / median:5.2f}")
    print(f"{name:4s} " + " | ".join(cells) + f" | max |dw| {difference:.1e}")


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    device = torch.device(sys.argv[2] if len(sys.argv) > 2 else "cpu")
    if len(sys.argv) > 3:
        torch.set_num_threads(int(sys.argv[3]))
    print(f"{CLIENTS} clients x {STEPS} steps of batch {BATCH}, SGD momentum + wd, rho=0.4 mask; "
          f"device {device}, {torch.get_num_threads()} torch threads, median of {repeats}")
    torch.manual_seed(0)
    measure("mlp", MLP((1, 28, 28), 10), (1, 28, 28), repeats, device)
    measure("cnn", CNN((3, 32, 32), 10), (3, 32, 32), repeats, device)


if __name__ == "__main__":
    main()
