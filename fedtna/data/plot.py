"""A picture of how labels are spread over clients, to check a partition at a glance."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fedtna.errors import ConfigError

MAX_LABELLED_CLIENTS = 40
MAX_PLOTTED_CLIENTS = 100


def check_label_range(labels: np.ndarray, num_classes: int) -> None:
    """One ConfigError line when a label is not below ``num_classes``."""
    label_array = np.asarray(labels, dtype=np.int64)
    if label_array.size and label_array.max() >= num_classes:
        raise ConfigError(f"num_classes={num_classes} but the labels go up to {int(label_array.max())}")


def label_counts(labels: np.ndarray, partitions: list[np.ndarray], num_classes: int) -> np.ndarray:
    """Samples of each class held by each client, as a (clients, classes) int64 matrix."""
    check_label_range(labels, num_classes)
    label_array = np.asarray(labels, dtype=np.int64)
    counts = np.zeros((len(partitions), num_classes), dtype=np.int64)
    for client, indices in enumerate(partitions):
        client_labels = label_array[np.asarray(indices, dtype=np.int64)]
        counts[client] = np.bincount(client_labels, minlength=num_classes)
    return counts


def plot_label_distribution(
    labels: np.ndarray, partitions: Sequence[np.ndarray], num_classes: int, path: str | Path
) -> None:
    """Save a stacked horizontal bar chart (one bar per client, one colour per class) as PNG.

    Above MAX_PLOTTED_CLIENTS clients a seeded sample of them is drawn (and the title says so), so
    the picture stays readable and costs the same at 10,000 clients as at 100.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    total_clients = len(partitions)
    shown_ids = np.arange(total_clients)
    if total_clients > MAX_PLOTTED_CLIENTS:
        shown_ids = np.sort(np.random.default_rng(0).choice(total_clients, MAX_PLOTTED_CLIENTS, replace=False))
    counts = label_counts(labels, [partitions[int(i)] for i in shown_ids], num_classes)
    num_clients = len(shown_ids)
    palette = matplotlib.colormaps["tab10" if num_classes <= 10 else "tab20"]
    figure = Figure(figsize=(9.0, min(max(3.0, 0.6 + 0.3 * num_clients), 30.0)))
    FigureCanvasAgg(figure)  # render with Agg without touching pyplot's global backend
    axes = figure.add_subplot()
    clients = np.arange(num_clients)
    left = np.zeros(num_clients, dtype=np.int64)
    for class_id in range(num_classes):
        colour = palette(class_id % palette.N)
        axes.barh(clients, counts[:, class_id], left=left, color=colour, label=str(class_id))
        left += counts[:, class_id]
    shown = clients[:: int(np.ceil(max(num_clients, 1) / MAX_LABELLED_CLIENTS))]
    axes.set_yticks(shown, [f"client {shown_ids[client]}" for client in shown])
    axes.invert_yaxis()
    axes.set_xlabel("number of samples")
    title = f"Label distribution over {total_clients} clients"
    if num_clients < total_clients:
        title = f"Label distribution of {num_clients} of {total_clients:,} clients (seeded sample)"
    axes.set_title(title)
    axes.legend(
        title="class", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
        ncols=int(np.ceil(num_classes / 25)),
    )
    figure.tight_layout()
    output = Path(path)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, format="png", dpi=120)
