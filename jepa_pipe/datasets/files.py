"""Reading annotation files safely: paths confined to the data root, plain-data pickles,
text lines with either line ending, and media found under each dataset's conventional folders."""

from __future__ import annotations

import io
import json
import pickle
import posixpath
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from jepa_pipe.datasets.manifest import ManifestError


def safe_relpath(rel: str, *, where: str) -> str:
    """Normalise an annotation path and refuse one that would leave the data root.

    The check is lexical ('..', absolute paths, drive letters): a symlink the user placed
    inside the root (e.g. videos on another disk) is the user's choice and is followed.
    """
    rel_posix = rel.replace("\\", "/").strip()
    if not rel_posix:
        raise ManifestError(f"{where}: empty path")
    norm = posixpath.normpath(rel_posix)
    if (
        rel_posix.startswith("/")
        or (len(rel_posix) > 1 and rel_posix[1] == ":")
        or norm == ".."
        or norm.startswith("../")
    ):
        raise ManifestError(f"{where}: path {rel!r} leaves the data root; refused")
    return norm


def find_file(root: Path, candidates: Sequence[str], *, what: str) -> Path:
    """The first candidate (relative to root) that exists, or an error listing where we looked."""
    for cand in candidates:
        p = root / cand
        if p.is_file():
            return p
    looked = ", ".join(str(root / c) for c in candidates)
    raise ManifestError(f"{what} not found; looked for: {looked}")


class MediaLocator:
    """Finds a media file under the first conventional sub-folder that holds it.

    Datasets ship their videos under different folder names depending on the release
    (e.g. MSR-VTT 'videos/all' vs 'MSRVTT_Videos'); every candidate that exists is tried.
    """

    def __init__(self, root: Path, subdirs: Sequence[str]):
        self.root = root
        self.dirs = [d for d in subdirs if (root / d).is_dir()] or [subdirs[0]]

    def find(self, name: str, *, where: str) -> tuple[str, bool]:
        """(path relative to root, exists). The path of a missing file uses the first folder."""
        name = safe_relpath(name, where=where)
        for d in self.dirs:
            rel = posixpath.normpath(posixpath.join(d, name))
            if (self.root / rel).is_file():
                return rel, True
        return posixpath.normpath(posixpath.join(self.dirs[0], name)), False


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) without line ending; CRLF (UCF-101 lists) and a BOM accepted.
    Blank lines are skipped."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text ({e})") from e
    for i, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield i, line.strip()


def read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ManifestError(
            f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from None


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles only what needs no import: dict, list, tuple, set, str, bytes, numbers, bool,
    None. Any class or function reference (the way a pickle runs code) is refused."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refused to load global {module}.{name}")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused persistent id")


def read_plain_pickle(path: Path) -> Any:
    """Load a pickle of plain containers and strings (e.g. MSVD raw-captions.pkl)."""
    try:
        return _PlainUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, IndexError) as e:
        raise ManifestError(
            f"{path}: not a plain-data pickle ({e}); only dicts, lists, tuples and strings "
            "are accepted, nothing that imports code"
        ) from e
