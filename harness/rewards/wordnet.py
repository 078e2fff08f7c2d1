"""Offline WordNet 3.0 for nltk's METEOR, built from Debian's ``wordnet-base`` package.

nltk's downloader needs the network, which these machines do not have. Debian's ``wordnet-base`` and
``wordnet-sense-index`` ship the same WordNet 3.0 database under ``/usr/share/wordnet``; nltk's
reader additionally needs a ``lexnames`` file. :func:`ensure_wordnet` assembles
``<cache>/nltk_data/corpora/wordnet/`` from copies (not symlinks) of those files plus ``lexnames``,
then puts ``<cache>/nltk_data`` on ``nltk.data.path``. ``HARNESS_WORDNET_SRC`` overrides the
source directory (tests point it at a missing one to exercise the exact+stem fallback).

METEOR reads WordNet through `reader()`: nltk's own reader, except that it skips building the map
from WordNet 3.0 to the loaded version, which only the multilingual (OMW) lookups use (METEOR's
`synsets` of English words never does): it loads in less than half the time (1.3 s vs 3.0 s here),
once per worker process, with the same synonyms.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

from harness.paths import cache_dir

__all__ = ["DEBIAN_WORDNET", "LEXNAMES_TEXT", "ensure_wordnet", "nltk_data_dir", "reader"]

DEBIAN_WORDNET = Path(os.environ.get("HARNESS_WORDNET_SRC", "/usr/share/wordnet"))

_POS_SUFFIXES = ("noun", "verb", "adj", "adv")
_REQUIRED = tuple(f"{kind}.{pos}" for kind in ("data", "index") for pos in _POS_SUFFIXES) + tuple(
    f"{pos}.exc" for pos in _POS_SUFFIXES
)

# The 45 WordNet 3.0 lexicographer files: number, name, syntactic category
# (1 noun, 2 verb, 3 adjective, 4 adverb), as listed in lexnames(5WN).
_LEXNAMES = (
    ["adj.all", "adj.pert", "adv.all"]
    + [
        f"noun.{n}"
        for n in (
            "Tops act animal artifact attribute body cognition communication event feeling food "
            "group location motive object person phenomenon plant possession process quantity "
            "relation shape state substance time"
        ).split()
    ]
    + [
        f"verb.{n}"
        for n in (
            "body change cognition communication competition consumption contact creation emotion "
            "motion perception possession social stative weather"
        ).split()
    ]
    + ["adj.ppl"]
)
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
LEXNAMES_TEXT = "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(_LEXNAMES))
assert len(_LEXNAMES) == 45

_lock = threading.Lock()
_result: bool | None = None


def nltk_data_dir() -> Path:
    return cache_dir() / "nltk_data"


def _build(target: Path) -> None:
    """Copy the Debian files into ``target`` atomically (temp dir + rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        files = sorted({p for pattern in ("*.exc", "data.*", "index.*") for p in DEBIAN_WORDNET.glob(pattern)})
        if (DEBIAN_WORDNET / "cntlist.rev").is_file():  # optional: Lemma.count()
            files.append(DEBIAN_WORDNET / "cntlist.rev")
        for src in files:
            shutil.copyfile(src, tmp / src.name)  # resolves symlinks: real copies
        (tmp / "lexnames").write_text(LEXNAMES_TEXT)
        tmp.chmod(0o755)  # mkdtemp makes it 0700; the cache may be shared
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "lexnames").is_file():  # not a concurrent builder winning: real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_wordnet() -> bool:
    """Make ``nltk.corpus.wordnet`` usable offline; True if it works, False if unavailable.

    Runs once per process (result cached). False when the Debian WordNet files are missing or the
    reader cannot load them; callers then fall back to exact+stem METEOR (see ``meteor_backend``).
    """
    global _result
    with _lock:
        if _result is not None:
            return _result
        _result = _ensure()
        return _result


def _ensure() -> bool:
    if not all((DEBIAN_WORDNET / name).is_file() for name in _REQUIRED):
        return False
    import nltk

    root = nltk_data_dir()
    target = root / "corpora" / "wordnet"
    if not all((target / name).is_file() for name in (*_REQUIRED, "lexnames")):
        if target.exists():  # incomplete leftover from an older layout: rebuild
            shutil.rmtree(target, ignore_errors=True)
        _build(target)
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    try:
        return len(reader().synsets("dog")) > 0
    except (LookupError, OSError, ValueError, AssertionError):
        return False


_reader = None


def reader():
    """The WordNet reader METEOR uses (built once per process; `ensure_wordnet` must have succeeded)."""
    global _reader
    if _reader is None:
        from nltk.corpus.reader.wordnet import WordNetCorpusReader

        class EnglishWordNet(WordNetCorpusReader):
            def map_wn(self, version: str = "wordnet"):  # the OMW version map: not needed in English
                return None

        with warnings.catch_warnings():  # "multilingual functions are not available": not used here
            warnings.simplefilter("ignore")
            _reader = EnglishWordNet(str(nltk_data_dir() / "corpora" / "wordnet"), None)
    return _reader
