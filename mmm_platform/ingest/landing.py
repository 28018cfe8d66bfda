"""The landing zone: which files each table folder holds, which of them may be read at all, what a
file's identity is, and what lies in the zone that no table claims.

The landing zone is the raw record of truth: nothing here writes, moves or deletes a file.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

#: what a landing file name may look like: no path separators, no leading dot or dash, no
#: control or quote characters, and one of the two formats the contract names
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._=+-]*\.(csv|parquet)$", re.IGNORECASE)
#: names of files still being written by an uploader; skipped until they are renamed
IN_PROGRESS = re.compile(r"(^\.|\.(tmp|part|partial|crdownload|inprogress)$|^~)", re.IGNORECASE)
#: files up to this size are hashed whole; larger ones by their ends (Parquet keeps its footer,
#: with every row group's statistics and offsets, in the last bytes)
FULL_HASH_BYTES = 32 * 2**20
EDGE_BYTES = 2**20
#: files at the landing root that belong there
ROOT_FILES = frozenset({"truth.json"})


@dataclass(frozen=True)
class LandingFile:
    table: str
    path: Path
    #: path relative to the landing root, as shown to users and stored in raw._source_file
    name: str
    size: int
    mtime: dt.datetime
    #: why the file cannot be read at all (bad name, escapes the zone, empty), or None
    problem: str | None = None
    #: content digest: an edit that keeps size and modification time still changes it
    content_hash: str | None = None

    @property
    def format(self) -> str:
        return self.path.suffix.lower().lstrip(".")

    @property
    def signature(self) -> tuple[int, dt.datetime, str | None]:
        """Size, modification time and content digest: a file whose signature changed is a new version."""
        return self.size, self.mtime, self.content_hash


def content_hash(path: Path, size: int) -> str:
    """blake2b of the whole file, or of its size, first and last MiB when it is large."""
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as f:
        if size <= FULL_HASH_BYTES:
            for chunk in iter(lambda: f.read(2**20), b""):
                digest.update(chunk)
        else:
            digest.update(str(size).encode())
            digest.update(f.read(EDGE_BYTES))
            f.seek(size - EDGE_BYTES)
            digest.update(f.read(EDGE_BYTES))
    return digest.hexdigest()


def _problem(entry: Path, root: Path) -> str | None:
    name = entry.name
    if entry.is_symlink():
        target = entry.resolve()
        if not target.is_relative_to(root.resolve()):
            return f"file name {name!r} is a link that points outside the landing zone ({target})"
    if entry.is_dir():
        return f"{name!r} is a folder; a table folder holds only .csv and .parquet files"
    if not entry.exists():
        return f"file name {name!r} is a link to nothing"
    if not SAFE_NAME.match(name):
        if not name.lower().endswith((".csv", ".parquet")):
            return f"file {name!r} is not a .csv or .parquet file"
        return (
            f"file name {name!r} is not allowed: use letters, digits, space, '.', '_', '-', '=' or '+', "
            "starting with a letter or digit"
        )
    if entry.stat().st_size == 0:
        return "empty file (0 bytes)"
    return None


def scan_table(root: Path, table: str) -> list[LandingFile]:
    """Files in <root>/<table>/, oldest first by (modification time, name): later rows win."""
    folder = root / table
    if not folder.is_dir():
        return []
    files = []
    for entry in folder.iterdir():
        if IN_PROGRESS.search(entry.name):
            continue
        problem = _problem(entry, root)
        stat = entry.lstat() if problem and (entry.is_symlink() or not entry.exists()) else entry.stat()
        files.append(
            LandingFile(
                table=table,
                path=entry,
                name=f"{table}/{entry.name}",
                size=stat.st_size,
                mtime=dt.datetime.fromtimestamp(stat.st_mtime_ns / 1e9, tz=dt.UTC).replace(tzinfo=None),
                problem=problem,
                content_hash=None if problem else content_hash(entry, stat.st_size),
            )
        )
    return sorted(files, key=lambda f: (f.mtime, f.name))


@dataclass(frozen=True)
class ZoneReport:
    """What the landing root holds besides the table folders (each entry reported, never read)."""

    root_exists: bool
    #: table folders that exist
    table_folders: tuple[str, ...]
    #: folder or file name -> the table it most resembles (None: no table)
    strays: dict[str, str | None]

    @property
    def empty(self) -> bool:
        return not self.table_folders

    def describe(self) -> list[str]:
        lines = []
        for name, table in sorted(self.strays.items()):
            hint = f"; did you mean {table}/?" if table else ""
            lines.append(f"{name} is not a landing table folder and is ignored{hint}")
        return lines


def scan_zone(root: Path, tables: set[str]) -> ZoneReport:
    """Folders and files at the landing root that no contract table claims, each with the table
    name it most resembles (case variants, singular/plural, typos)."""
    if not root.is_dir():
        return ZoneReport(False, (), {})
    folders, strays = [], {}
    lowered = {t.lower(): t for t in tables}
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name in tables and entry.is_dir():
            folders.append(entry.name)
            continue
        if IN_PROGRESS.search(entry.name) or (entry.name in ROOT_FILES and entry.is_file()):
            continue
        # a file named like a table's monthly file (sales_2024-01.csv) resembles that table
        stem = re.sub(r"[_-]?\d.*$", "", entry.name.split(".")[0]) if entry.is_file() else entry.name
        close = difflib.get_close_matches(stem.lower(), list(lowered), n=1, cutoff=0.75)
        name = entry.name + ("/" if entry.is_dir() else "")
        strays[name] = lowered[close[0]] if close else None
    return ZoneReport(True, tuple(folders), strays)
