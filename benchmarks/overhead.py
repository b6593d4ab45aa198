"""fedtna's per-round overhead against a bare PyTorch FedAvg loop doing the identical SGD steps.

Same data (CIFAR-shaped synthetic tensors), same partitions, same initial model, same
batches and optimizer: once through ``python -m fedtna.run``'s code path (Flower
simulation on Ray, clients in parallel actors), once as a plain loop in this process.
Prints start-up separately and the steady-state ratio fedtna / bare loop.

    python benchmarks/overhead.py [rounds]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fedtna.config import RunConfig
from fedtna.config.entry import compose_run_config
from fedtna.fl.experiment import initial_model, run_experiment
from fedtna.fl.local_data import all_partitions, dataset_bundle
from fedtna.masks import derive_seed
from fedtna.training import batch_indices, steps_per_epoch


def bare_fedavg(run_config: RunConfig, threads: int) -> float:
    """Plain FedAvg: sequential clients, torch.optim.SGD, state_dict averaging. Returns seconds."""
    torch.set_num_threads(threads)
    bundle = dataset_bundle(run_config)
    partitions = all_partitions(run_config)
    global_model = initial_model(run_config)
    worker = initial_model(run_config)
    batch_size = run_config.batch_size
    started = time.perf_counter()
    for server_round in range(1, run_config.num_rounds + 1):
        round_seed = derive_seed(run_config.seed, "round", server_round)
        states, sizes = [], []
        for partition_id, indices in enumerate(partitions):
            inputs, labels = bundle.train_x[indices], bundle.train_y[indices]
            worker.load_state_dict(global_model.state_dict())
            optimizer = torch.optim.SGD(worker.parameters(), lr=run_config.lr, momentum=run_config.momentum)
            generator = torch.Generator().manual_seed(derive_seed(round_seed, "client", partition_id))
            batches = batch_indices(len(labels), batch_size, generator)
            worker.train()
            for _ in range(run_config.local_epochs * steps_per_epoch(len(labels), batch_size)):
                index = next(batches)
                optimizer.zero_grad()
                F.cross_entropy(worker(inputs[index]), labels[index]).backward()
                optimizer.step()
            states.append({k: v.detach().clone() for k, v in worker.state_dict().items()})
            sizes.append(len(labels))
        total = sum(sizes)
        global_model.load_state_dict({k: sum(s[k] * (n / total) for s, n in zip(states, sizes, strict=True))
                                      for k in states[0]})
    return time.perf_counter() - started


def fedtna_run(rounds: int, num_cpus: int) -> tuple[RunConfig, float, float]:
    """One fedtna simulation; returns (run config, total seconds, steady-state seconds of rounds 2..R)."""
    output = Path(tempfile.mkdtemp(prefix="fedtna-overhead-"))
    run_config = compose_run_config([
        "dataset=synthetic", "model=cnn", "num_clients=10", f"num_rounds={rounds}", "local_epochs=1",
        "batch_size=32", "partition=iid", "progress=false", "save_model=false", "eval_every=1000",
        f"simulation.num_cpus={num_cpus}",
    ], output)
    started = time.perf_counter()
    run_experiment(run_config)
    total = time.perf_counter() - started
    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    # round 1 includes actor warm-up (imports, data load); the last round includes the final evaluation
    return run_config, total, sum(row["seconds"] for row in rows[1:-1])


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    steady_rounds = rounds - 2
    run_config, total, steady = fedtna_run(rounds, num_cpus=1)
    bare_seconds = bare_fedavg(run_config, threads=1)
    bare_steady = bare_seconds * steady_rounds / rounds
    print(f"work: 10 clients x 200 CIFAR-shaped samples, CNN, batch 32, 1 local epoch, {rounds} rounds")
    print("one CPU for both: fedtna = 1 Ray actor with 1 torch thread, bare loop = 1 torch thread")
    print(f"fedtna start-up + round-1 warm-up + final evaluation: {total - steady:.2f} s")
    print(f"steady state ({steady_rounds} rounds): fedtna {steady:.2f} s, bare loop {bare_steady:.2f} s")
    print(f"RATIO fedtna / bare loop (steady state): {steady / bare_steady:.3f}   (goal <= 1.10)")
    print(f"ratio with start-up included: {total / bare_seconds:.3f}")


if __name__ == "__main__":
    main()
