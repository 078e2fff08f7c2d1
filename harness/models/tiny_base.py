"""The tiny preset's base model, shipped with the package and verified at load.

Every study of the embedded default fine-tunes this one model. It is built by
`harness.train.base_model` (CTC, then SFT over the frozen encoder), but rebuilding it is not
reproducible across machines: the same commit built a different base on Intel than on AMD (float
reduction order differs, base test BLEU 14.9 vs 11.3), so studies run elsewhere would start from a
different model. So the base built for the default `TinySpec` is shipped in `harness/assets/` and
its weights' sha256 is checked whenever it is loaded. A `TinySpec` with other settings has no
shipped base: it is built on first use and cached (`<cache>/models/tiny-<digest>`), and runs record
that it was built here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.config import TinySpec

__all__ = ["ASSETS", "SHIPPED_SHA256", "BaseModelError", "built_base", "file_sha256", "shipped_base", "tiny_identity"]

ASSETS = Path(__file__).resolve().parent.parent / "assets"
WEIGHTS = "model.safetensors"
# TinySpec digest -> sha256 of the shipped weights (the files are in ASSETS / f"tiny-{digest}").
SHIPPED_SHA256: dict[str, str] = {
    # built on AMD EPYC, 2026-11-30 (recipe 2)
    "b5ce808d5cc4": "64b5fe957c1946ba848d3164783d9e3cc8ed3f3a916bac2df24ec967ed604a61",
}


class BaseModelError(RuntimeError):
    """A shipped base model whose files are missing or do not match their checksum."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shipped_base(spec: TinySpec) -> tuple[Path, str] | None:
    """(directory, weights sha256) of the shipped base for ``spec``, checked; None if none is shipped."""
    expected = SHIPPED_SHA256.get(spec.digest())
    if expected is None:
        return None
    path = ASSETS / f"tiny-{spec.digest()}"
    weights = path / WEIGHTS
    if not weights.is_file():
        raise BaseModelError(
            f"{weights}: the shipped tiny base model is missing. Fix: restore it from git "
            f"(git checkout -- {ASSETS.name}) or reinstall the package."
        )
    found = file_sha256(weights)
    if found != expected:
        raise BaseModelError(
            f"{weights}: sha256 {found[:12]}... does not match the shipped base ({expected[:12]}...): "
            "the file is corrupted or was replaced. Fix: restore it from git."
        )
    return path, found


def built_base(spec: TinySpec) -> Path:
    """Where the base for ``spec`` is built and cached when none is shipped (harness.train.base_model)."""
    from harness.paths import cache_root

    return cache_root() / "models" / f"tiny-{spec.digest()}"


def tiny_identity(spec: TinySpec) -> str:
    """The tiny base in the records: ``tiny-<digest> sha256:<weights> (shipped | built here)``."""
    shipped = shipped_base(spec)
    if shipped is not None:
        return f"tiny-{spec.digest()} sha256:{shipped[1]} (shipped)"
    weights = built_base(spec) / WEIGHTS
    if weights.is_file():
        return f"tiny-{spec.digest()} sha256:{file_sha256(weights)} (built here)"
    return f"tiny-{spec.digest()} (not built yet)"
