"""A sweep job's folder name that the file system accepts: ``<job num>_<overrides>``, shortened when too long.

Hydra names a job's folder after its overrides; a long grid (e.g. ``scripts/evidence.sh tuned`` with extra
overrides) makes that name longer than a file name may be (255 bytes), and the job fails. A name whose every
path component fits (a value with ``/`` nests folders) is kept as it is, so reruns with ``resume=auto`` find
their folders; a longer component keeps its start and ends with ``~`` and a digest of the whole component,
so different jobs still get different folders and a rerun finds the same one.
"""

from __future__ import annotations

import hashlib

from omegaconf import OmegaConf

RESOLVER = "fedtna.job_dir"
NAME_MAX_BYTES = 255  # the usual limit of one path component (ext4, xfs, apfs; ntfs counts UTF-16 units)
DIGEST_CHARS = 12


def fitted_component(component: str) -> str:
    """``component`` if it fits in NAME_MAX_BYTES, else its first bytes (whole characters), ``~`` and a digest."""
    encoded = component.encode()
    if len(encoded) <= NAME_MAX_BYTES:
        return component
    digest = hashlib.sha256(encoded).hexdigest()[:DIGEST_CHARS]
    head = encoded[:NAME_MAX_BYTES - DIGEST_CHARS - 1].decode(errors="ignore")  # never half a character
    return f"{head}~{digest}"


def job_dir_name(num: int | str, override_dirname: str) -> str:
    """Hydra's ``<num>_<override_dirname>``, each path component cut to NAME_MAX_BYTES (see the module)."""
    return "/".join(fitted_component(component) for component in f"{num}_{override_dirname}".split("/"))


def register_job_dir_resolver() -> None:
    """``${fedtna.job_dir:${hydra.job.num},${hydra.job.override_dirname}}`` in the configs' ``hydra.sweep.subdir``."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, job_dir_name)
