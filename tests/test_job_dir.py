"""Sweep job folders: ``<num>_<overrides>`` as Hydra names them, shortened with a digest past 255 bytes."""

from __future__ import annotations

import pytest
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


@pytest.mark.parametrize("character", ["é", "€", "🙂"])  # 2, 3 and 4 bytes: some cut lands mid-character
def test_a_cut_never_splits_a_character(character: str) -> None:
    name = job_dir_name(2, "tag=x" + character * 200)
    head, digest = name.rsplit("~", 1)
    assert len(digest) == 12 and NAME_MAX_BYTES - len(character.encode()) < len(name.encode()) <= NAME_MAX_BYTES
    assert head.startswith("2_tag=x") and set(head[len("2_tag=x"):]) == {character}


def test_only_a_component_that_is_too_long_is_cut() -> None:
    """A value with '/' nests folders: each folder name may have 255 bytes, not the whole path."""
    nested = "init_checkpoint=" + "/".join(["d" * 200] * 3) + "/model.pt,seed=0"
    assert job_dir_name(0, nested) == f"0_{nested}"
    long_tail = "init_checkpoint=runs/model.pt,tag=" + "t" * 300
    first, rest = job_dir_name(0, long_tail).split("/")
    assert first == "0_init_checkpoint=runs" and len(rest.encode()) == NAME_MAX_BYTES and "~" in rest


def test_both_configs_name_sweep_jobs_with_it() -> None:
    for config_name in ("config", "lmc"):
        sweep = OmegaConf.load(CONF_DIR / f"{config_name}.yaml").hydra.sweep
        assert OmegaConf.to_container(sweep)["subdir"] == SUBDIR
        overrides = "lr=0.1,mask.scope=[conv1,fc1],tag='a b',x=é"  # commas, brackets, quotes: passed as one value
        job = {"hydra": {"job": {"num": 4, "override_dirname": overrides}}}
        resolved = OmegaConf.merge(job, {"hydra": {"sweep": sweep}})
        assert resolved.hydra.sweep.subdir == f"4_{overrides}"  # the resolver is registered on import of the entry
