"""The landing zone: which files each table folder holds, which of them may be read at all, what a
file's identity is, and what lies in the zone that no table claims.

The landing zone is the raw record of truth: nothing here writes, moves or deletes a file.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import os
import re
import stat as stat_mode
from dataclasses import dataclass, field
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
    #: (device, inode, size, mtime_ns, ctime_ns) when scanned: any write since then changes it
    #: (ctime cannot be set back), so the loader can tell a file replaced while it was read
    stamp: tuple[int, ...] | None = field(default=None, compare=False)

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


def stamp_of(st: os.stat_result) -> tuple[int, ...]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def current_stamp(path: Path) -> tuple[int, ...] | None:
    """The file's stamp now; None when it is gone (or is no longer a readable regular file)."""
    try:
        return stamp_of(path.stat())
    except (OSError, RuntimeError):
        return None


def _problem(entry: Path, root: Path) -> str | None:
    name = entry.name
    try:
        if entry.is_symlink():
            target = entry.resolve(strict=True)
            if not target.is_relative_to(root.resolve()):
                return f"file name {name!r} is a link that points outside the landing zone ({target})"
        st = entry.stat()
    except FileNotFoundError:
        return f"file name {name!r} is a link to nothing"
    except (OSError, RuntimeError) as exc:  # ELOOP: Python 3.12 raises RuntimeError, 3.13 OSError
        if "loop" in str(exc).lower() or getattr(exc, "errno", None) == 40:
            return f"file name {name!r} is a link that loops back on itself"
        return f"file {name!r} cannot be read: {getattr(exc, 'strerror', None) or exc}"
    if stat_mode.S_ISDIR(st.st_mode):
        return f"{name!r} is a folder; a table folder holds only .csv and .parquet files"
    if not stat_mode.S_ISREG(st.st_mode):
        return f"{name!r} is not a regular file (a pipe, socket or device); a table folder holds only files"
    if not SAFE_NAME.match(name):
        if not name.lower().endswith((".csv", ".parquet")):
            return f"file {name!r} is not a .csv or .parquet file"
        return (
            f"file name {name!r} is not allowed: use letters, digits, space, '.', '_', '-', '=' or '+', "
            "starting with a letter or digit"
        )
    if st.st_size == 0:
        return "empty file (0 bytes)"
    return None


def has_entries(root: Path, table: str) -> bool:
    """Whether <root>/<table>/ holds anything scan_table would report (without reading it)."""
    folder = root / table
    try:
        return folder.is_dir() and any(not IN_PROGRESS.search(e.name) for e in folder.iterdir())
    except OSError:
        return False


def scan_table(root: Path, table: str) -> list[LandingFile]:
    """Files in <root>/<table>/, oldest first by (modification time, name): later rows win. An entry
    that disappears while the folder is scanned is not there."""
    folder = root / table
    if not folder.is_dir():
        return []
    files = []
    for entry in folder.iterdir():
        if IN_PROGRESS.search(entry.name):
            continue
        problem = _problem(entry, root)
        try:
            st = entry.lstat() if problem else entry.stat()
            digest = None if problem else content_hash(entry, st.st_size)
        except FileNotFoundError:
            continue
        except OSError as exc:
            problem, digest = f"file {entry.name!r} cannot be read: {exc.strerror}", None
        files.append(
            LandingFile(
                table=table,
                path=entry,
                name=f"{table}/{entry.name}",
                size=st.st_size,
                mtime=dt.datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=dt.UTC).replace(tzinfo=None),
                problem=problem,
                content_hash=digest,
                stamp=None if problem else stamp_of(st),
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
        # a renamed or copied table folder: sales_old/, sales-backup/, sales.bak/
        prefixed = sorted((t for t in lowered if re.match(rf"{re.escape(t)}[ ._-]", stem.lower())), key=len)
        name = entry.name + ("/" if entry.is_dir() else "")
        strays[name] = lowered[close[0]] if close else lowered[prefixed[-1]] if prefixed else None
    return ZoneReport(True, tuple(folders), strays)
