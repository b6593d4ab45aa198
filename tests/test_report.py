"""``fedtna.report``: grouping, paired comparison, incomplete runs, fusion tables, CLI, Hydra callback."""

from __future__ import annotations

import csv
import json
import math
import random
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from fedtna.report.build import build_report
from fedtna.report.callback import FailedJobsCallback, ReportCallback
from fedtna.report.cli import main as report_main
from fedtna.report.fl import analyse_fl
from fedtna.report.fusion import analyse_fusion, headline_table, sweep_tables
from fedtna.report.runs import ReportError, find_runs

T_975_2DOF = 4.302652729749464  # Student t, 97.5% quantile, 2 degrees of freedom (statistical tables)


def fake_run(root: Path, name: str, *, seed: int, accuracies: list[float | None], strategy: str = "fedavg",
             alpha: float = 0.5, num_rounds: int | None = None, summary: bool = True,
             extra: dict[str, Any] | None = None) -> Path:
    """A run folder as ``fedtna.run`` writes it: config.json, metrics.jsonl, summary.json."""
    folder = root / name
    folder.mkdir(parents=True)
    config = {"seed": seed, "strategy": {"name": strategy, "_target_": f"fedtna.fl.strategies.{strategy}.X",
                                         "server": "fedavg", "proximal_mu": 0.0},
              "partition": {"name": "dirichlet", "alpha": alpha}, "model": {"name": "mlp", "hidden_sizes": [32]},
              "num_rounds": len(accuracies) if num_rounds is None else num_rounds, "mask_ratio": 0.4,
              "mask": {"granularity": "weight", "scope": None}, "lr": 0.05, "output_dir": str(folder),
              "progress": False, "print_config": False, "data_dir": "~/.cache", "save_model": True,
              "verbose": False, "wandb": {"mode": "disabled", "project": "fedtna"}, **(extra or {})}
    if strategy == "fedpnu":
        config["strategy"]["pnu_split"] = "epoch"
    (folder / "config.json").write_text(json.dumps(config))
    rows = [{"round": r + 1, "test_accuracy": acc, "test_loss": None if acc is None else 2 - acc,
             "train_loss": 1.0, "seconds": 0.5, "clients": 3, "failed_clients": 0} for r, acc in enumerate(accuracies)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    if summary:
        (folder / "summary.json").write_text(json.dumps({"final_test_accuracy": accuracies[-1], "rounds": len(rows),
                                                         "wall_seconds": 3.0, "total_wall_seconds": 10.0 + seed}))
    return folder


def paired_sweep(root: Path) -> None:
    """fedavg and fedpnu on seeds 0-2; fedpnu's last five rounds are fedavg's + 0.01, 0.03, 0.02."""
    for seed, diff in zip(range(3), (0.01, 0.03, 0.02), strict=True):
        base = [0.5 + 0.01 * r + 0.02 * seed for r in range(6)]
        fake_run(root, f"avg{seed}", seed=seed, accuracies=base)
        fake_run(root, f"pnu{seed}", seed=seed, strategy="fedpnu", accuracies=[0.3] + [a + diff for a in base[1:]])


def test_paired_comparison_has_the_known_answer(tmp_path: Path) -> None:
    paired_sweep(tmp_path)
    analysis = analyse_fl(find_runs([tmp_path]).fl)
    assert [group.label for group in analysis.groups] == ["strategy=fedavg", "strategy=fedpnu"]
    (comparison,) = analysis.comparisons
    assert comparison.baseline is analysis.groups[0]
    result = comparison.result
    diffs = [0.01, 0.03, 0.02]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    half = T_975_2DOF * sd / math.sqrt(3)
    assert result.seeds == (0, 1, 2) and result.wins == 3
    assert result.mean == pytest.approx(0.02, abs=1e-12)
    assert result.low == pytest.approx(mean - half, abs=1e-9) and result.high == pytest.approx(mean + half, abs=1e-9)


def test_one_common_seed_has_no_confidence_interval(tmp_path: Path) -> None:
    fake_run(tmp_path, "avg0", seed=0, accuracies=[0.5, 0.6])
    fake_run(tmp_path, "avg1", seed=1, accuracies=[0.5, 0.6])
    fake_run(tmp_path, "pnu0", seed=0, strategy="fedpnu", accuracies=[0.6, 0.7])
    (comparison,) = analyse_fl(find_runs([tmp_path]).fl).comparisons
    assert comparison.result.n == 1 and comparison.result.low is None
    assert comparison.result.mean == pytest.approx(0.1) and comparison.result.ci_text() == "n/a (1 seed)"


def test_baseline_matches_the_same_panel_and_can_be_chosen(tmp_path: Path) -> None:
    for alpha in (0.1, 1.0):
        for seed in (0, 1):
            fake_run(tmp_path, f"avg-{alpha}-{seed}", seed=seed, alpha=alpha, accuracies=[0.5, 0.6 + alpha / 10])
            fake_run(tmp_path, f"pnu-{alpha}-{seed}", seed=seed, alpha=alpha, strategy="fedpnu",
                     accuracies=[0.5, 0.6 + seed / 100])
    analysis = analyse_fl(find_runs([tmp_path]).fl)
    assert analysis.panels == ["partition.alpha=0.1", "partition.alpha=1.0"]
    for comparison in analysis.comparisons:
        assert comparison.baseline.panel == comparison.group.panel
    reverse = analyse_fl(find_runs([tmp_path]).fl, "strategy=fedpnu")
    assert all(c.group.method == "strategy=fedavg" for c in reverse.comparisons)
    with pytest.raises(ReportError, match="no run has these settings"):
        analyse_fl(find_runs([tmp_path]).fl, "strategy=fedprox")


def test_grouping_ignores_seed_and_bookkeeping_keys(tmp_path: Path) -> None:
    for seed in range(3):
        fake_run(tmp_path, f"run{seed}", seed=seed, accuracies=[0.5, 0.6],
                 extra={"progress": seed == 0, "print_config": seed == 1, "data_dir": f"/data{seed}",
                        "save_model": seed != 2, "verbose": seed == 2, "device": f"cuda:{seed}",
                        "wandb": {"mode": "offline", "project": f"p{seed}"}, "simulation": {"num_cpus": seed}})
    fake_run(tmp_path, "other", seed=0, accuracies=[0.5, 0.6], extra={"lr": 0.1})
    analysis = analyse_fl(find_runs([tmp_path]).fl)
    assert analysis.keys == ["lr"]
    assert [(group.label, len(group.runs)) for group in analysis.groups] == [("lr=0.05", 3), ("lr=0.1", 1)]


def test_labels_name_only_what_differs(tmp_path: Path) -> None:
    paired_sweep(tmp_path)
    analysis = analyse_fl(find_runs([tmp_path]).fl)
    assert set(analysis.keys) == {"strategy.name", "strategy._target_", "strategy.pnu_split"}
    assert analysis.named == ["strategy.name"]


def test_incomplete_and_failed_runs_are_listed_and_never_averaged(tmp_path: Path) -> None:
    fake_run(tmp_path, "good0", seed=0, accuracies=[0.5, 0.6])
    fake_run(tmp_path, "good1", seed=1, accuracies=[0.5, 0.8])
    fake_run(tmp_path, "running", seed=2, accuracies=[0.5], num_rounds=2, summary=False)
    fake_run(tmp_path, "short", seed=3, accuracies=[0.5], num_rounds=2)
    fake_run(tmp_path, "diverged", seed=4, accuracies=[0.5, None])
    nan = fake_run(tmp_path, "nan", seed=5, accuracies=[0.5, 0.6])
    (nan / "metrics.jsonl").write_text('{"round": 1, "test_accuracy": 0.5}\n{"round": 2, "test_accuracy": NaN}\n')
    fake_run(tmp_path, "repeat", seed=0, accuracies=[0.5, 0.1])
    report = build_report([tmp_path], plots=False)
    (group,) = report.fl.groups
    assert group.seeds == (0, 1) and group.final.mean == pytest.approx(0.7)
    reasons = {item.path.name: item.reason for item in report.fl.excluded}
    assert set(reasons) == {"running", "short", "diverged", "nan", "repeat"}
    assert "no summary.json" in reasons["running"] and "1 of 2 rounds" in reasons["short"]
    assert "null or NaN" in reasons["diverged"] and "null or NaN" in reasons["nan"]
    assert "duplicate" in reasons["repeat"]
    text = report.files["md"].read_text()
    for name in reasons:
        assert str(tmp_path / name) in text


def failed_job(root: Path, name: str, *, seed: int, accuracies: list[float | None], num_rounds: int,
               reason: str, overrides: list[str]) -> Path:
    """A job folder whose summary.json says failed, with the overrides Hydra saved."""
    folder = fake_run(root, name, seed=seed, accuracies=accuracies, num_rounds=num_rounds, summary=False)
    (folder / "summary.json").write_text(json.dumps({"status": "failed", "failure": "diverged", "reason": reason,
                                                     "completed_rounds": len(accuracies) - 1,
                                                     "rounds": len(accuracies)}))
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {item}\n" for item in overrides))
    return folder


def test_failed_jobs_are_listed_apart_and_never_averaged(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fake_run(tmp_path, "0_seed=0", seed=0, accuracies=[0.5, 0.6, 0.7])
    fake_run(tmp_path, "2_seed=2", seed=2, accuracies=[0.5, 0.6, 0.9])
    fake_run(tmp_path, "3_seed=3", seed=3, accuracies=[0.5], num_rounds=3)  # incomplete, not failed
    folder = failed_job(tmp_path, "1_seed=1", seed=1, accuracies=[0.5, 0.6], num_rounds=3,
                        reason="round 2: the run diverged (x not finite)",
                        overrides=["seed=1", "lr=50", "resume=auto"])  # a rerun with resume=auto saved this
    report = build_report([tmp_path], plots=False)
    (group,) = report.fl.groups
    assert group.seeds == (0, 2) and group.final.mean == pytest.approx(0.8)  # the failed seed is left out
    (job,) = report.failed
    assert (job.path, job.overrides, job.completed_rounds) == (folder, "seed=1 lr=50", 1)
    text = report.files["md"].read_text()
    assert "(2 complete, 1 failed)" in text
    failed_section = text.split("## Failed jobs", 1)[1].split("## Federated runs", 1)[0]
    assert "| 1_seed=1 | seed=1 lr=50 | round 2: the run diverged (x not finite) | 1 of 3 |" in failed_section
    excluded_section = text.split("### Incomplete or failed runs (excluded)", 1)[1]
    assert "3_seed=3" in excluded_section and "1_seed=1" not in excluded_section  # listed once
    document = json.loads(report.files["json"].read_text())
    assert document["failed"] == [{"path": str(folder), "overrides": "seed=1 lr=50",
                                   "reason": "round 2: the run diverged (x not finite)", "completed_rounds": 1,
                                   "num_rounds": 3}]
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    ReportCallback(plots=False).on_multirun_end(config)
    out = capsys.readouterr().out
    assert "Failed jobs" in out and "1_seed=1" in out
    FailedJobsCallback().on_multirun_end(config)  # what fedtna.run's exit code reads
    assert FailedJobsCallback.failed == [folder]
    (folder / "summary.json").unlink()
    FailedJobsCallback().on_multirun_end(config)
    assert FailedJobsCallback.failed == []


def test_different_num_rounds_in_one_setting_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fake_run(tmp_path, "a", seed=0, accuracies=[0.5, 0.6, 0.7])
    fake_run(tmp_path, "b", seed=1, accuracies=[0.5, 0.6])
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(tmp_path), "--no-plots"])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "different num_rounds" in lines[0]


def test_groups_of_different_num_rounds_are_not_paired(tmp_path: Path) -> None:
    fake_run(tmp_path, "avg", seed=0, accuracies=[0.5, 0.6, 0.7])
    fake_run(tmp_path, "pnu", seed=0, strategy="fedpnu", accuracies=[0.5, 0.6])
    (comparison,) = analyse_fl(find_runs([tmp_path]).fl).comparisons
    assert comparison.result is None and "num_rounds=2" in comparison.note


def test_report_numbers_equal_those_recomputed_from_metrics(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = random.Random(7)
    for strategy in ("fedavg", "fedpnu"):
        for seed in range(3):
            fake_run(tmp_path / strategy, f"s{seed}", seed=seed, strategy=strategy,
                     accuracies=[rng.uniform(0.3, 0.9) for _ in range(8)])
    assert report_main([str(tmp_path), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "strategy=fedpnu" in printed and f"report: {tmp_path / 'out' / 'report.md'}" in printed
    document = json.loads((tmp_path / "out" / "report.json").read_text())
    csv_rows = {row["label"]: row for row in csv.DictReader((tmp_path / "out" / "report.csv").open())}
    markdown = (tmp_path / "out" / "report.md").read_text()
    last5_by_seed = {}
    for group in document["fl"]["groups"]:
        finals, bests, last5s = [], [], []
        for run in group["runs"]:
            lines = Path(run, "metrics.jsonl").read_text().splitlines()
            accuracies = [json.loads(line)["test_accuracy"] for line in lines]
            finals.append(accuracies[-1])
            bests.append(max(accuracies))
            last5s.append(sum(accuracies[-5:]) / 5)
        last5_by_seed[group["label"]] = last5s
        for key, values in (("final_test_accuracy", finals), ("best_test_accuracy", bests),
                            ("last5_mean_test_accuracy", last5s)):
            assert group[key]["mean"] == pytest.approx(statistics.mean(values), rel=1e-12)
            assert group[key]["std"] == pytest.approx(statistics.stdev(values), rel=1e-12)
            assert float(csv_rows[group["label"]][f"{key}_mean"]) == pytest.approx(statistics.mean(values), rel=1e-12)
        last5 = statistics.mean(last5s)
        assert f"{100 * last5:.2f} ± {100 * statistics.stdev(last5s):.2f}" in markdown
        assert group["rounds"] == 8 and group["wall_seconds"]["mean"] == pytest.approx(11.0)
    diffs = [a - b for a, b in zip(last5_by_seed["strategy=fedpnu"], last5_by_seed["strategy=fedavg"], strict=True)]
    comparison = document["fl"]["groups"][1]["comparison"]
    assert comparison["mean_difference"] == pytest.approx(statistics.mean(diffs), rel=1e-12)
    assert comparison["wins"] == sum(d > 0 for d in diffs)
    assert "Paired comparison" in markdown and "scipy.stats.t" in markdown


def fake_lmc(root: Path, name: str, *, seed: int, ratio: float, barriers: dict[str, float]) -> None:
    """An lmc.json with one pair per mode; the accuracy barrier also sets the other numbers."""
    folder = root / name
    folder.mkdir(parents=True)
    modes = {}
    for mode, barrier in barriers.items():
        pair = {"pair": [0, 1], "alphas": [0.0, 0.5, 1.0], "accuracy": [0.9, 0.9 - barrier, 0.9],
                "loss": [0.3, 0.3 + 10 * barrier, 0.3], "accuracy_barrier": barrier,
                "accuracy_barrier_relative": barrier / 0.9, "loss_barrier": 10 * barrier}
        modes[mode] = {"endpoints": [{"model": 0, "accuracy": 0.9, "loss": 0.3}] * 2, "pairs": [pair],
                       "summary": {"endpoint_accuracy_mean": 0.9, "accuracy_barrier_mean": barrier,
                                   "accuracy_barrier_relative_mean": barrier / 0.9, "loss_barrier_mean": 10 * barrier},
                       "fusion": {"fused_accuracy": 0.9 - 2 * barrier, "mean_accuracy": 0.9, "best_accuracy": 0.91}}
    config = {"seed": seed, "dataset": {"name": "mnist5k"}, "model": {"name": "mlp", "hidden_sizes": [200, 200]},
              "init": "independent", "data_split": "same", "num_models": 2, "epochs": 10, "lr": 0.05,
              "batch_size": 64, "mask_ratio": ratio, "modes": None, "output_dir": str(folder), "num_threads": 1}
    (folder / "lmc.json").write_text(json.dumps({"config": config, "modes": modes, "wall_seconds": 1.0}))


def test_fusion_tables_from_lmc_json(tmp_path: Path) -> None:
    for seed, (vanilla, tna) in enumerate(((0.05, 0.01), (0.07, 0.02))):
        fake_lmc(tmp_path / "main", f"s{seed}", seed=seed, ratio=0.4,
                 barriers={"vanilla": vanilla, "tna_pfn": tna, "prune_init": 0.04})
        fake_lmc(tmp_path / "sweep", f"s{seed}", seed=seed, ratio=0.8, barriers={"tna_pfn": 0.03, "prune_init": 0.1})
    fake_lmc(tmp_path / "repeat", "s0", seed=0, ratio=0.4, barriers={"vanilla": 0.5, "weight_matching": 0.0})
    analysis = analyse_fusion(find_runs([tmp_path]).lmc)
    (row,) = headline_table(analysis).rows
    assert row == ["mask_ratio=0.4", "2", "6.00 ± 1.41", "1.50 ± 0.71", "75%", "0.600 ± 0.141", "0.150 ± 0.071",
                   "75%", "78.00 ± 2.83", "87.00 ± 1.41"]
    (sweep,) = sweep_tables(analysis)
    assert [r[0] for r in sweep.rows] == ["0.4", "0.8"]
    assert sweep.rows[1][sweep.columns.index("prune-init acc barrier")] == "10.00 ± 0.00"
    report = build_report([tmp_path], plots=True)
    assert "weight matching" in report.files["md"].read_text()  # a repeat's extra mode is merged, not a third seed
    assert sorted(path.name for path in report.plots) == ["fusion-mask_ratio=0.4.png", "fusion-mask_ratio=0.8.png"]
    assert all(path.stat().st_size > 10_000 for path in report.plots)


def test_fl_plots_one_per_panel(tmp_path: Path) -> None:
    for alpha in (0.1, 1.0):
        for seed in (0, 1):
            fake_run(tmp_path, f"avg-{alpha}-{seed}", seed=seed, alpha=alpha, accuracies=[0.5, 0.6, 0.7])
    report = build_report([tmp_path])
    assert sorted(path.name for path in report.plots) == ["curves-partition.alpha=0.1.png",
                                                          "curves-partition.alpha=1.0.png"]


def test_drift_metrics_get_their_own_axes_when_recorded(tmp_path: Path) -> None:
    from PIL import Image

    heights = []
    for drift in (False, True):
        root = tmp_path / f"drift{drift}"
        for seed in (0, 1):
            folder = fake_run(root, f"avg{seed}", seed=seed, accuracies=[0.5, 0.6, 0.7])
            if drift:
                rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
                for row in rows:
                    row.update(update_norm=1.0, update_spread=0.5, update_agreement=0.7, global_norm=10.0)
                (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        (plot,) = build_report([root]).plots
        heights.append(Image.open(plot).size[1])
    assert heights[1] > 2.5 * heights[0]  # three rows of axes instead of one


def test_drift_table_is_the_mean_over_rounds_then_over_seeds(tmp_path: Path) -> None:
    for seed, spreads in enumerate(([1.0, 3.0], [2.0, 6.0])):
        folder = fake_run(tmp_path, f"avg{seed}", seed=seed, accuracies=[0.5, 0.6])
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        for row, spread in zip(rows, spreads, strict=True):
            row.update(update_norm=2 * spread, update_spread=spread, update_agreement=0.5, global_norm=10.0 + seed)
        (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    markdown = build_report([tmp_path], plots=False).files["md"].read_text()
    # spreads: run means 2 and 4 -> 3 ± 1.414; moves 6 ± 2.828; global norm of the last round 10.5 ± 0.707
    assert "| strategy=fedavg | 2 | 6.000 ± 2.828 | 3.000 ± 1.414 | 0.500 ± 0.000 | 10.500 ± 0.707 |" in markdown


def masked_run(root: Path, name: str, *, seed: int, strategy: str, ratio: float, accuracies: list[float],
               extra: dict[str, Any] | None = None) -> Path:
    """A masked run: every metrics row reports the fixed fraction, as clients under masks do."""
    folder = fake_run(root, name, seed=seed, strategy=strategy, accuracies=accuracies,
                      extra={"mask_ratio": ratio, **(extra or {})})
    rows = [{**json.loads(line), "fixed_fraction": ratio}
            for line in (folder / "metrics.jsonl").read_text().splitlines()]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_mask_keys_are_left_out_of_labels_of_runs_without_masks(tmp_path: Path) -> None:
    fake_run(tmp_path, "avg", seed=0, accuracies=[0.5, 0.6])
    for ratio in (0.4, 0.6):
        masked_run(tmp_path, f"pnu{ratio}", seed=0, strategy="fedpnu", ratio=ratio, accuracies=[0.5, 0.7])
    labels = sorted(group.label for group in build_report([tmp_path], plots=False).fl.groups)
    assert labels == ["strategy=fedavg", "strategy=fedpnu mask_ratio=0.4", "strategy=fedpnu mask_ratio=0.6"]


def test_ratio_sweep_collects_each_masked_method_over_its_ratios(tmp_path: Path) -> None:
    """FedPFN collapses at high rho, FedPNU does not; two ratios are no sweep; FedAvg is the baseline line."""
    from fedtna.report.ratio_sweep import ratio_series, ratio_tables

    for seed in range(3):
        fake_run(tmp_path, f"avg{seed}", seed=seed, accuracies=[0.5 + 0.01 * seed] * 6)
        for ratio, pfn, pnu in ((0.2, 0.60, 0.62), (0.6, 0.55, 0.65), (0.9, 0.20, 0.64)):
            masked_run(tmp_path, f"pfn{ratio}-{seed}", seed=seed, strategy="fedpfn", ratio=ratio,
                       accuracies=[pfn + 0.01 * seed] * 6)
            masked_run(tmp_path, f"pnu{ratio}-{seed}", seed=seed, strategy="fedpnu", ratio=ratio,
                       accuracies=[pnu + 0.01 * seed] * 6)
        for ratio in (0.2, 0.6):  # only two ratios: not a sweep
            masked_run(tmp_path, f"prox{ratio}-{seed}", seed=seed, strategy="fedprox", ratio=ratio,
                       accuracies=[0.5] * 6)
    report = build_report([tmp_path])
    series = ratio_series(report.fl)
    assert [(item.name, item.ratios) for item in series] == [
        ("strategy=fedpfn", [0.2, 0.6, 0.9]), ("strategy=fedpnu", [0.2, 0.6, 0.9])]
    (table,) = ratio_tables(report.fl).values()
    assert [row[0] for row in table.rows] == ["0.2", "0.6", "0.9"]
    assert table.rows[2][1].startswith("21.00 ± 1.00 (n=3)")
    assert table.rows[2][2].startswith("-30.00 [-30.00, -30.00] (0/3)")
    assert table.rows[2][4].startswith("+14.00")
    assert (tmp_path / "ratio-sweep.png").stat().st_size > 0
    markdown = (tmp_path / "report.md").read_text()
    assert "Mask-ratio sweep" in markdown and "ratio-sweep.png" in markdown


def test_method_keys_pair_groups_that_differ_in_that_setting(tmp_path: Path) -> None:
    """FedAvg at another lr is a second baseline candidate only when lr counts as a method key."""
    for seed in range(3):
        fake_run(tmp_path, f"avg{seed}", seed=seed, accuracies=[0.5] * 6, extra={"lr": 0.05})
        fake_run(tmp_path, f"avg-small{seed}", seed=seed, accuracies=[0.6] * 6, extra={"lr": 0.025})
        fake_run(tmp_path, f"pnu{seed}", seed=seed, strategy="fedpnu", accuracies=[0.7] * 6, extra={"lr": 0.05})
    by_panel = build_report([tmp_path], plots=False).fl
    assert sorted(by_panel.panels) == ["lr=0.025", "lr=0.05"]
    pooled = build_report([tmp_path], plots=False, baseline="strategy=fedavg lr=0.025", method_keys=["lr"]).fl
    assert pooled.panels == [""]
    (pnu,) = [c for c in pooled.comparisons if c.group.label.startswith("strategy=fedpnu")]
    assert pnu.baseline.label == "strategy=fedavg lr=0.025" and pnu.result.mean == pytest.approx(0.1)


def test_no_runs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no runs"):
        build_report([tmp_path])


def test_callback_prints_one_error_line_and_never_raises(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    ReportCallback().on_multirun_end(config)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: report of") and "no runs" in lines[0]
    paired_sweep(tmp_path)
    ReportCallback(plots=False).on_multirun_end(config)
    assert f"report: {tmp_path / 'report.md'}" in capsys.readouterr().out


@pytest.mark.slow
def test_multirun_ends_with_the_report(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    command = [sys.executable, "-m", "fedtna.run", "-m", "strategy=fedavg,fedpnu", "seed=0,1",
               "partition.alpha=0.1,1.0", "num_rounds=2", "num_clients=3", "model=mlp", "model.hidden_sizes=[32]",
               "progress=false", "print_config=false", "save_model=false", f"hydra.sweep.dir={sweep}"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"report: {sweep / 'report.md'}" in result.stdout and "Federated runs" in result.stdout
    for name in ("report.md", "report.csv", "report.json", "curves-partition.alpha=0.1.png",
                 "curves-partition.alpha=1.0.png"):
        assert (sweep / name).exists(), name
    document = json.loads((sweep / "report.json").read_text())
    groups = document["fl"]["groups"]
    assert sorted(group["label"] for group in groups) == sorted(
        f"strategy={s} partition.alpha={a}" for s in ("fedavg", "fedpnu") for a in ("0.1", "1.0"))
    for group in groups:
        assert group["seeds"] == [0, 1] and group["rounds"] == 2
        finals = [json.loads(Path(run, "metrics.jsonl").read_text().splitlines()[-1])["test_accuracy"]
                  for run in group["runs"]]
        assert group["final_test_accuracy"]["mean"] == pytest.approx(statistics.mean(finals), rel=1e-12)
        if group["label"].startswith("strategy=fedpnu"):
            assert group["comparison"]["common_seeds"] == [0, 1]
            assert group["comparison"]["baseline"] == group["label"].replace("fedpnu", "fedavg")
