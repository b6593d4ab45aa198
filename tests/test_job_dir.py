"""Sweep job folders: ``<num>_<overrides>`` as Hydra names them, shortened with a digest past 255 bytes."""

from __future__ import annotations

from omegaconf import OmegaConf

from fedtna.config.entry import CONF_DIR
from fedtna.config.job_dir import NAME_MAX_BYTES, job_dir_name

SUBDIR = "${fedtna.job_dir:${hydra.job.num},${hydra.job.override_dirname}}"


def test_a_name_that_fits_is_hydras_own() -> None:
    assert job_dir_name(3, "lr=0.1,seed=0") == "3_lr=0.1,seed=0"
    assert job_dir_name(0, "") == "0_"
    fits = "x" * (NAME_MAX_BYTES - 2)
    assert job_dir_name(7, fits) == f"7_{fits}"


def test_a_long_name_is_cut_to_255_bytes_and_keeps_jobs_apart() -> None:
    common = ",".join(f"key{i}=value{i}" for i in range(40))
    first, second = job_dir_name(1, common + ",lr=0.1"), job_dir_name(1, common + ",lr=0.2")
    assert len(first.encode()) == len(second.encode()) == NAME_MAX_BYTES
    assert first != second and first.startswith("1_key0=value0,")
    assert job_dir_name(1, common + ",lr=0.1") == first  # a rerun finds the same folder


def test_a_cut_never_splits_a_character() -> None:
    name = job_dir_name(2, "tag=" + "é" * 200)
    assert len(name.encode()) <= NAME_MAX_BYTES
    name.encode().decode()  # whole characters only


def test_both_configs_name_sweep_jobs_with_it() -> None:
    for config_name in ("config", "lmc"):
        sweep = OmegaConf.load(CONF_DIR / f"{config_name}.yaml").hydra.sweep
        assert OmegaConf.to_container(sweep)["subdir"] == SUBDIR
        job = {"hydra": {"job": {"num": 4, "override_dirname": "lr=0.1"}}}
        resolved = OmegaConf.merge(job, {"hydra": {"sweep": sweep}})
        assert resolved.hydra.sweep.subdir == "4_lr=0.1"  # the resolver is registered on import of the entry
