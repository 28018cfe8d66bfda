"""The landing zone: which files each table folder holds, and which of them may be read at all.

The landing zone is the raw record of truth: nothing here writes, moves or deletes a file.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

#: what a landing file name may look like: no path separators, no leading dot or dash, no
#: control or quote characters, and one of the two formats the contract names
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._=+-]*\.(csv|parquet)$", re.IGNORECASE)
#: names of files still being written by an uploader; skipped until they are renamed
IN_PROGRESS = re.compile(r"(^\.|\.(tmp|part|partial|crdownload|inprogress)$|^~)", re.IGNORECASE)


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

    @property
    def format(self) -> str:
        return self.path.suffix.lower().lstrip(".")

    @property
    def signature(self) -> tuple[int, dt.datetime]:
        """Size and modification time: a file whose signature changed is a new version."""
        return self.size, self.mtime


def _problem(entry: Path, root: Path) -> str | None:
    name = entry.name
    if entry.is_symlink():
        target = entry.resolve()
        if not target.is_relative_to(root.resolve()):
            return f"file name {name!r} is a link that points outside the landing zone ({target})"
    if entry.is_dir():
        return f"{name!r} is a folder; a table folder holds only .csv and .parquet files"
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
        stat = entry.lstat() if problem and entry.is_symlink() else entry.stat()
        files.append(
            LandingFile(
                table=table,
                path=entry,
                name=f"{table}/{entry.name}",
                size=stat.st_size,
                mtime=dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.UTC).replace(tzinfo=None),
                problem=problem,
            )
        )
    return sorted(files, key=lambda f: (f.mtime, f.name))


def unknown_folders(root: Path, tables: set[str]) -> list[str]:
    """Folders in the landing root that no contract table claims (reported, never read)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in tables)
