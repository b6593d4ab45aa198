"""``fedtna-report --select``: each method at its value chosen on validation data, then compared on test data."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from fedtna.report.build import build_report
from fedtna.report.cli import main as report_main
from fedtna.report.runs import ReportError, find_runs
from fedtna.report.selection import select
from tests.test_report import fake_run

LRS = (0.0125, 0.025, 0.05, 0.1)
# Validation and test accuracy disagree on purpose: the test set would choose other learning rates.
TEST = {"fedavg": {0.0125: 0.80, 0.025: 0.82, 0.05: 0.86, 0.1: 0.84},
        "fedpfn": {0.0125: 0.79, 0.025: 0.81, 0.05: 0.83, 0.1: 0.88}}
VAL = {"fedavg": {0.0125: 0.81, 0.025: 0.87, 0.05: 0.85, 0.1: 0.80},
       "fedpfn": {0.0125: 0.78, 0.025: 0.80, 0.05: 0.86, 0.1: 0.85}}


def tuned_run(root: Path, name: str, *, seed: int, lr: float, test: float, val: float | None,
              strategy: str = "fedavg", mu: float | None = None, ratio: float | None = None) -> Path:
    """A run of a tuning grid: constant test (and validation) accuracy over 6 rounds, so last-5 = the value;
    ``ratio``: a masked run (its clients report ``fixed_fraction``)."""
    extra = {"lr": lr, "validation_fraction": 0.1 if val is not None else 0.0, "weight_decay": 5e-4}
    folder = fake_run(root, name, seed=seed, accuracies=[test] * 6, strategy=strategy,
                      extra={**extra, "mask_ratio": ratio} if ratio is not None else extra)
    if mu is not None:
        config = json.loads((folder / "config.json").read_text())
        config["strategy"]["proximal_mu"] = mu
        (folder / "config.json").write_text(json.dumps(config))
    if val is not None:
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        rows = [{**row, "val_accuracy": val, "val_loss": 2 - val, **({"fixed_fraction": ratio} if ratio else {})}
                for row in rows]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def lr_grid(root: Path, val: dict[str, dict[float, float]] = VAL, seeds: int = 3) -> None:
    """FedAvg and FedPFN at four learning rates; FedPFN gains 0.5 points more per seed than FedAvg."""
    for strategy in ("fedavg", "fedpfn"):
        for lr in LRS:
            for seed in range(seeds):
                gain = 0.01 * seed if strategy == "fedpfn" else 0.005 * seed
                tuned_run(root, f"{strategy}-{lr}-{seed}", seed=seed, lr=lr, strategy=strategy,
                          test=TEST[strategy][lr] + gain, val=val[strategy][lr] + 0.001 * seed)


def test_each_method_gets_its_best_value_on_validation_not_on_test(tmp_path: Path) -> None:
    lr_grid(tmp_path)
    selection = select(find_runs([tmp_path]).fl, ["lr"])
    chosen = {method.label: method.chosen.values for method in selection.methods}
    assert chosen == {"strategy=fedavg": (0.025,), "strategy=fedpfn": (0.05,)}  # test would pick 0.05 and 0.1
    assert not selection.warnings
    assert {run.config["lr"] for run in selection.runs if run.config["strategy.name"] == "fedavg"} == {0.025}
    fedavg = next(method for method in selection.methods if method.label == "strategy=fedavg")
    assert fedavg.chosen.validation.mean == pytest.approx(0.871)
    assert [c.values for c in fedavg.candidates] == [(lr,) for lr in LRS]


def test_the_comparison_is_on_test_accuracy_at_the_chosen_values(tmp_path: Path) -> None:
    lr_grid(tmp_path)
    fl = build_report([tmp_path], plots=False, select=["lr"]).fl
    (comparison,) = fl.comparisons
    assert comparison.baseline.runs[0].config["lr"] == 0.025  # FedAvg at its own chosen lr
    assert comparison.group.runs[0].config["lr"] == 0.05
    differences = [TEST["fedpfn"][0.05] + 0.01 * s - TEST["fedavg"][0.025] - 0.005 * s for s in range(3)]
    assert comparison.result.differences == pytest.approx(differences)
    assert comparison.result.mean == pytest.approx(statistics.fmean(differences)) and comparison.result.wins == 3
    assert comparison.result.low < comparison.result.mean < comparison.result.high


def test_the_report_shows_the_chosen_values(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lr_grid(tmp_path)
    assert report_main([str(tmp_path), "--no-plots", "--select", "lr"]) == 0
    console = capsys.readouterr().out
    assert "Selection of lr on validation data" in console and "lr=0.025: 87.10 ✓" in console
    assert "warning:" not in console and "⚠" not in console
    report = (tmp_path / "report.md").read_text()
    assert "### Selection on validation data" in report and "| strategy=fedpfn | lr=0.05 |" in report
    assert "chosen on validation" in report and "**Selection (`--select lr`):**" in report
    document = json.loads((tmp_path / "report.json").read_text())
    assert [group["chosen"] for group in document["fl"]["groups"]] == [{"lr": 0.025}, {"lr": 0.05}]
    assert document["fl"]["selection"]["methods"][0]["chosen"] == "lr=0.025"


def test_a_choice_at_the_edge_of_the_grid_is_warned(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    edge = {"fedavg": {**VAL["fedavg"], 0.1: 0.95}, "fedpfn": VAL["fedpfn"]}
    lr_grid(tmp_path, edge)
    assert report_main([str(tmp_path), "--no-plots", "--select", "lr"]) == 0
    console = capsys.readouterr().out
    warning = ("strategy=fedavg: the chosen lr=0.1 is the highest value of its grid [0.0125, 0.025, 0.05, 0.1]; "
               "the best value may lie above it")
    assert f"warning: {warning}" in console
    report = (tmp_path / "report.md").read_text()
    assert f"**Warning:** {warning}." in report and "lr=0.1 ⚠ edge of grid" in report
    assert "lr=0.05 ⚠" not in report  # FedPFN's choice is inside its grid


def test_several_keys_are_chosen_together(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """FedProx over lr x mu: validation prefers (0.05, 0.01), test (0.025, 0.1); FedAvg has one mu (0)."""
    prox_val = {(0.025, 0.001): 0.80, (0.025, 0.01): 0.81, (0.025, 0.1): 0.79,
                (0.05, 0.001): 0.84, (0.05, 0.01): 0.88, (0.05, 0.1): 0.83}
    for seed in range(3):
        for lr in (0.025, 0.05):
            tuned_run(tmp_path, f"avg-{lr}-{seed}", seed=seed, lr=lr, test=0.80 + 0.01 * (lr == 0.05),
                      val=0.82 - 0.01 * (lr == 0.05))
            for mu in (0.001, 0.01, 0.1):
                test = 0.90 if (lr, mu) == (0.025, 0.1) else 0.85 + 0.002 * seed
                tuned_run(tmp_path, f"prox-{lr}-{mu}-{seed}", seed=seed, lr=lr, mu=mu, strategy="fedprox",
                          test=test, val=prox_val[lr, mu])
    selection = select(find_runs([tmp_path]).fl, ["lr", "strategy.proximal_mu"])
    chosen = {method.label: method.values_text() for method in selection.methods}
    assert chosen == {"strategy=fedavg": "lr=0.025",
                      "strategy=fedprox": "lr=0.05 strategy.proximal_mu=0.01"}
    assert [(edge.method, edge.key, edge.side) for method in selection.methods for edge in method.edges] == [
        ("strategy=fedavg", "lr", "lowest"), ("strategy=fedprox", "lr", "highest")]  # mu 0.01 lies inside
    (comparison,) = build_report([tmp_path], plots=False, select=["lr", "strategy.proximal_mu"]).fl.comparisons
    assert comparison.result.differences == pytest.approx([0.85 - 0.80, 0.852 - 0.80, 0.854 - 0.80])
    assert report_main([str(tmp_path), "--no-plots", "--select", "lr,strategy.proximal_mu", "--out",
                        str(tmp_path / "commas")]) == 0
    assert report_main([str(tmp_path), "--no-plots", "--select", "lr", "--select", "strategy.proximal_mu", "--out",
                        str(tmp_path / "repeated")]) == 0
    commas = json.loads((tmp_path / "commas" / "report.json").read_text())["fl"]["selection"]
    assert commas == json.loads((tmp_path / "repeated" / "report.json").read_text())["fl"]["selection"]
    assert commas["keys"] == ["lr", "strategy.proximal_mu"]


def test_methods_are_labelled_without_the_mask_settings_of_unmasked_runs(tmp_path: Path) -> None:
    for seed in range(2):
        for lr in (0.025, 0.05):
            tuned_run(tmp_path, f"avg-{lr}-{seed}", seed=seed, lr=lr, test=0.8, val=0.8 + lr)
            tuned_run(tmp_path, f"pnu-{lr}-{seed}", seed=seed, lr=lr, test=0.8, val=0.9 - lr, strategy="fedpnu",
                      ratio=0.6)
    selection = select(find_runs([tmp_path]).fl, ["lr"])
    assert [(method.label, method.values_text()) for method in selection.methods] == [
        ("strategy=fedavg", "lr=0.05"), ("strategy=fedpnu mask_ratio=0.6", "lr=0.025")]


def test_a_value_with_a_missing_seed_is_not_chosen(tmp_path: Path) -> None:
    """FedAvg's best validation lr lost seed 2 (diverged or still running): it cannot be compared fairly."""
    lr_grid(tmp_path)
    for folder in tmp_path.glob("fedavg-0.025-2"):
        (folder / "summary.json").unlink()
    selection = select(find_runs([tmp_path]).fl, ["lr"])
    fedavg = next(method for method in selection.methods if method.label == "strategy=fedavg")
    assert fedavg.chosen.values == (0.05,)
    (ruled_out,) = [c for c in fedavg.candidates if c.values == (0.025,)]
    assert not ruled_out.eligible and ruled_out.note == "no complete run for seed 2"
    assert selection.warnings == ["strategy=fedavg: lr=0.025 is left out of the selection (no complete run for seed 2)"]


def test_a_choice_without_every_seed_is_warned_and_not_called_left_out(tmp_path: Path) -> None:
    lr_grid(tmp_path)
    for lr, seed in zip(LRS, (0, 1, 2, 0), strict=True):  # every FedAvg value lost a seed
        (tmp_path / f"fedavg-{lr}-{seed}" / "summary.json").unlink()
    selection = select(find_runs([tmp_path]).fl, ["lr"])
    fedavg = next(method for method in selection.methods if method.label == "strategy=fedavg")
    assert fedavg.chosen.values == (0.025,) and not fedavg.chosen.eligible
    assert selection.warnings[0] == ("strategy=fedavg: no value has a complete run for every seed; lr=0.025 was "
                                     "chosen among those with the most (no complete run for seed 1)")
    assert not any("lr=0.025 is left out" in warning for warning in selection.warnings)
    assert sum("is left out" in warning for warning in selection.warnings) == 3


def test_a_value_left_out_is_warned_in_the_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lr_grid(tmp_path)
    (tmp_path / "fedpfn-0.1-1" / "summary.json").unlink()
    out = tmp_path / "report"
    report_main([str(tmp_path), "--select", "lr", "--out", str(out)])
    warning = "strategy=fedpfn: lr=0.1 is left out of the selection (no complete run for seed 1)"
    assert warning in " ".join(capsys.readouterr().out.split())
    assert warning in (out / "report.md").read_text()
    assert "Shared by the runs at their chosen values:" in (out / "report.md").read_text()
    assert json.loads((out / "report.json").read_text())["fl"]["selection"]["warnings"] == [warning]


def test_runs_without_validation_metrics_are_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lr_grid(tmp_path)
    tuned_run(tmp_path, "old", seed=0, lr=0.2, test=0.8, val=None)
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(tmp_path), "--no-plots", "--select", "lr"])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --select needs validation accuracy (val_accuracy")
    assert "1 of 25 complete runs have none, e.g. " in lines[0] and lines[0].endswith("old")


@pytest.mark.parametrize(("key", "message"), [("momentum", "--select momentum: no run has this key"),
                                              ("seed", "--select seed: seed does not change what a run computes")])
def test_a_key_that_cannot_be_selected_is_refused(tmp_path: Path, key: str, message: str) -> None:
    lr_grid(tmp_path, seeds=1)
    with pytest.raises(ReportError, match=message):
        build_report([tmp_path], plots=False, select=[key])
