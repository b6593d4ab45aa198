"""Masked vs unmasked local training step, measured side by side in one process.

For the CNN and ResNet-20 on CIFAR-shaped batches (3x32x32, batch 64, SGD with momentum
and weight decay): the same steps with no mask and with a rho = 0.4 anchor mask, in
interleaved repeats; prints the median time ratio masked / unmasked (goal <= 1.03)
and the memory a client holds for the mask (boolean masks + anchor values) against
one float copy of the model.

    python benchmarks/masked_step.py [steps_per_repeat] [repeats]
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from fedtna.masks import AnchorGuard, MaskSpec, draw_fixed_masks, mask_memory_bytes
from fedtna.models.cnn import CNN
from fedtna.models.resnet import ResNet20
from fedtna.training import OptimizerSettings, Phase, local_train

SETTINGS = OptimizerSettings(name="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4)


def timed_steps(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, masks, steps: int) -> float:
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    local_train(model, inputs, labels, [Phase(masks, steps)], SETTINGS, 64, generator)
    return time.perf_counter() - started


def measure(name: str, model: torch.nn.Module, steps: int, repeats: int) -> None:
    inputs = torch.randn(640, 3, 32, 32)
    labels = torch.randint(0, 10, (640,))
    masks = draw_fixed_masks(model.named_parameters(), 1, MaskSpec(ratio=0.4, granularity="weight"))
    timed_steps(model, inputs, labels, masks, 3)  # warm-up
    plain, masked = [], []
    for _ in range(repeats):
        plain.append(timed_steps(model, inputs, labels, None, steps))
        masked.append(timed_steps(model, inputs, labels, masks, steps))
    ratio = statistics.median(m / p for m, p in zip(masked, plain, strict=True))
    guard = AnchorGuard(model, masks)
    restore_started = time.perf_counter()
    for _ in range(100):
        guard.restore()
    restore_ms = 10 * (time.perf_counter() - restore_started)
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    mask_bytes = mask_memory_bytes(masks)
    anchor_bytes = guard.anchor_bytes
    print(f"{name:10s} step {1000 * statistics.median(plain) / steps:7.2f} ms unmasked, "
          f"{1000 * statistics.median(masked) / steps:7.2f} ms masked   RATIO {ratio:.3f} (goal <= 1.03)")
    print(f"{'':10s} anchor restore alone: {restore_ms:.3f} ms per step = "
          f"{restore_ms / (1000 * statistics.median(plain) / steps):.4f} of an unmasked step")
    print(f"{'':10s} memory per client: masks {mask_bytes / 1e6:.2f} MB (1 byte/param) + anchors "
          f"{anchor_bytes / 1e6:.2f} MB (fixed entries only) vs one float copy {model_bytes / 1e6:.2f} MB")


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"batch 64 of 3x32x32, SGD momentum 0.9 wd 5e-4, rho 0.4, {steps} steps x {repeats} interleaved repeats")
    measure("CNN", CNN((3, 32, 32), 10), steps, repeats)
    measure("ResNet-20", ResNet20((3, 32, 32), 10), steps, repeats)


if __name__ == "__main__":
    main()
