"""Atomic folders: build a whole folder beside its destination, then swap it in.

An interrupted writer leaves the old folder (or nothing) at the destination, never a half-written one. Standard
library only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgecnn.errors import OutputError


@contextlib.contextmanager
def staged_dir(dest: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``dest``; on success it replaces ``dest``.

    ``dest`` existing and not empty is an OutputError unless ``overwrite``. The old folder is moved aside and
    deleted only after the new one is in place; on any error the temp folder is removed and ``dest`` untouched.
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise OutputError(f"{dest} exists and is a file; choose a folder path for --out")
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        raise OutputError(f"{dest} already exists and is not empty; pass --overwrite or choose another --out")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the finished folder gets ordinary permissions
    except OSError as exc:
        raise OutputError(f"cannot write to {dest.parent}: {exc.strerror or exc}; choose a writable folder") from exc
    try:
        yield tmp
        old = None
        if dest.exists():
            old = dest.parent / f".{dest.name}.old.{os.getpid()}"
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write {dest}: {exc.strerror or exc} (disk full or folder read-only?)") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
