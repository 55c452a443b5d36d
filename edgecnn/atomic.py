"""Atomic writes: a temp file in the destination folder, fsync, then rename; a whole folder built beside its
destination, then swapped in.

An interrupted write (crash, kill -9, full disk) leaves either the old file/folder or the complete new one at the
destination, never a truncated one; the temp file or folder is removed on any error. Standard library only.

Permissions: what we write gets the user's umask, like any ordinary ``open()`` (typically 0644 files and 0755
folders), so another user, a web server or a copy to the Pi can read it. ``tempfile.mkstemp``/``mkdtemp`` would
create 0600/0700 and the rename would keep that mode, so the temp file and folder are created here with
``O_CREAT | O_EXCL`` and the ordinary 0666/0777 request, which the kernel narrows by the umask itself (reading the
umask with ``os.umask`` would briefly change it for every thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgecnn.errors import OutputError

_ATTEMPTS = 100  # random temp names tried before giving up (a collision needs 2**32 names in one folder)


def _temp_name(dest: Path, suffix: str) -> Path:
    return dest.parent / f".{dest.name}.{secrets.token_hex(4)}.tmp{suffix}"


def make_temp_file(dest: str | os.PathLike, suffix: str = "") -> Path:
    """Create an empty, hidden, uniquely named file beside ``dest`` with the umask's ordinary mode (unlike
    ``tempfile.mkstemp``'s 0600) and return its path. Raises OSError (FileExistsError after many collisions)."""
    dest = Path(dest)
    for _ in range(_ATTEMPTS):
        tmp = _temp_name(dest, suffix)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(dest.parent))


def make_temp_dir(dest: str | os.PathLike) -> Path:
    """Create an empty, hidden, uniquely named folder beside ``dest`` with the umask's ordinary mode (unlike
    ``tempfile.mkdtemp``'s 0700) and return its path. Raises OSError."""
    dest = Path(dest)
    for _ in range(_ATTEMPTS):
        tmp = _temp_name(dest, "")
        try:
            os.mkdir(tmp, 0o777)
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(dest.parent))


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it is renamed onto ``dest``.

    Use it for writers that want a file name (OpenCV, Keras, matplotlib). ``suffix`` keeps an extension that
    such writers look at (``.keras``, ``.png``).
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = make_temp_file(dest, suffix)
    except OSError as exc:
        raise OutputError(f"cannot write to {dest.parent}: {exc.strerror or exc}; choose a writable folder") from exc
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, dest)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise OutputError(f"cannot write {dest}: {exc.strerror or exc} (disk full or folder read-only?)") from exc
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically and return ``dest`` as a Path."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``dest`` atomically."""
    return write_bytes(dest, text.encode("utf-8"))


def write_json(dest: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``dest`` atomically."""
    return write_text(dest, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def check_folder_dest(dest: str | os.PathLike, overwrite: bool = False) -> Path:
    """OutputError unless ``dest`` can become a folder: not a file, and empty or absent unless ``overwrite``.

    :func:`staged_dir` checks this itself; call it first when a long computation precedes the write.
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise OutputError(f"{dest} exists and is a file; choose a folder path for --out")
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        raise OutputError(f"{dest} already exists and is not empty; pass --overwrite or choose another --out")
    return dest


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``), so that a crash or kill -9 at
    any moment leaves either the old or the new folder at ``b``. False when this system cannot (then the caller
    falls back to two renames)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # kernel or file system without the flag
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def staged_dir(dest: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``dest``; on success it replaces ``dest``.

    ``dest`` existing and not empty is an OutputError unless ``overwrite``. The old folder is moved aside and
    deleted only after the new one is in place; on any error the temp folder is removed and ``dest`` untouched.
    """
    dest = check_folder_dest(dest, overwrite)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = make_temp_dir(dest)
    except OSError as exc:
        raise OutputError(f"cannot write to {dest.parent}: {exc.strerror or exc}; choose a writable folder") from exc
    try:
        yield tmp
        if dest.exists() and _exchange(tmp, dest):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
        else:
            # Without an atomic exchange there is a moment with no folder at dest; the old one is kept aside
            # under a hidden name until the new one is in place.
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
