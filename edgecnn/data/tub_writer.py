"""Donkey Car "tub v2" writer (standard library + OpenCV for the JPEGs): the format :mod:`edgecnn.data.tub`
reads and donkeycar's own ``donkeycar.parts.tub_v2.Tub`` reads.

Layout, as donkeycar's ``datastore_v2`` writes it::

    TUB/manifest.json             5 JSON lines: inputs, types, metadata, manifest metadata, catalog state
                                  {"paths": [...], "current_index": N, "max_len": 1000, "deleted_indexes": [...]}
    TUB/catalog_K.catalog         one JSON record per line (sorted keys), 1000 records per catalog
    TUB/catalog_K.catalog_manifest one JSON line: {"path", "created_at", "start_index", "line_lengths"}
    TUB/images/I_cam_image_array_.jpg

Crash safety (kill -9, a pulled power cable):

- a record's JPEG is written before its catalog line, so a line never names a missing image;
- each catalog line is appended and flushed to the OS at once (a killed process loses nothing already written),
  and the catalog and images are fsync'ed at least every ``sync_every_s`` seconds (a power cut loses at most that);
- ``manifest.json`` and the catalog manifests are replaced atomically (temp file + rename), never rewritten in
  place, so a crash leaves the old or the new one; the manifest names a new catalog before that catalog exists;
- a half-written last catalog line (the crash came mid-write) is skipped by both readers:
  :func:`edgecnn.data.tub.read_tub` counts it as a ``bad_json`` fault, donkeycar logs "Failed loading record";
- records are never rewritten: "delete" marks indexes in the manifest's ``deleted_indexes``, as donkeycar's
  ``Tub.delete_records`` does.

Example::

    with TubWriter.create(Path("data/tub_1")) as tub:
        tub.write(frame_bgr, angle=0.1, throttle=0.3, mode="user")
        tub.delete_since(time.time() - 5)   # "drop the last 5 seconds"
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from edgecnn.errors import OutputError

IMAGE_KEY = "cam/image_array"
INPUTS = [IMAGE_KEY, "user/angle", "user/throttle", "user/mode"]
TYPES = ["image_array", "float", "float", "str"]
MAX_LEN = 1000  # records per catalog file, donkeycar's default


def _replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, flush, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def next_tub_path(root: Path) -> Path:
    """``root/tub_N`` with N one more than the highest existing ``tub_*`` (a new tub per recording)."""
    highest = 0
    if root.is_dir():
        for d in root.iterdir():
            tail = d.name[4:] if d.name.startswith("tub_") else ""
            if tail.isdigit():
                highest = max(highest, int(tail))
    return root / f"tub_{highest + 1}"


@dataclass(frozen=True)
class TubSummary:
    """What a closed tub holds.

    Attributes:
        path: the tub folder.
        records: records written (including those marked deleted).
        deleted: records marked deleted.
    """

    path: str
    records: int
    deleted: int

    @property
    def kept(self) -> int:
        return self.records - self.deleted


class TubWriter:
    """Appends records to a new tub v2 folder. One recording thread calls :meth:`write`, :meth:`delete_since` and
    :meth:`close`; a daemon thread of its own fsyncs and refreshes the manifests every ``sync_every_s`` seconds.

    Use :meth:`create`; records go in with :meth:`write`, deletions with :meth:`delete_since`.
    """

    def __init__(self, path: Path, session: str, jpeg_quality: int = 90, sync_every_s: float = 1.0) -> None:
        self.path = path
        self.images = path / "images"
        self.session = session
        self.jpeg_quality = int(jpeg_quality)
        self.sync_every_s = sync_every_s
        self.created_at = time.time()
        self.index = 0  # the next record's _index
        self.deleted: set[int] = set()
        self.catalogs: list[str] = []
        self._stamps: list[int] = []  # _timestamp_ms of every record, by index (for delete_since)
        self._catalog: TextIO | None = None
        self._catalog_lengths: list[int] = []
        self._catalog_created = 0.0
        self._unsynced_images: list[int] = []
        # The recording thread appends; the syncer thread fsyncs once per sync_every_s (an fsync costs ~5 ms
        # here, 20 images a second would cost the loop a tenth of its time). _state guards the fields above,
        # _manifest_io serialises the atomic manifest replacements (the newest state is written last).
        self._state = threading.Lock()
        self._manifest_io = threading.Lock()
        self._sync_error: OSError | None = None
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        self.closed = False

    @classmethod
    def create(cls, path: Path, jpeg_quality: int = 90, sync_every_s: float = 1.0) -> TubWriter:
        """Create the tub folder ``path`` (it must not exist yet) and its manifest; a syncer thread starts.

        Raises OutputError (one line) when ``path`` exists or cannot be created (read-only disk, no permission).
        """
        path = Path(path)
        if path.exists():
            raise OutputError(f"{path} already exists; a recording always goes to a new tub")
        try:
            path.mkdir(parents=True)
            (path / "images").mkdir()
        except OSError as exc:
            raise OutputError(f"cannot create the tub {path}: {exc.strerror or exc}") from None
        writer = cls(path, session=f"{time.strftime('%y-%m-%d')}_0", jpeg_quality=jpeg_quality,
                     sync_every_s=sync_every_s)
        try:
            writer._write_manifest()
        except OSError as exc:
            raise OutputError(f"cannot write {path / 'manifest.json'}: {exc.strerror or exc}") from None
        writer._syncer = threading.Thread(target=writer._sync_loop, name=f"tub-sync:{path.name}", daemon=True)
        writer._syncer.start()
        return writer

    # -- manifest ------------------------------------------------------------------------------------------------
    def _write_manifest(self) -> None:
        with self._manifest_io:
            with self._state:
                state = {"paths": list(self.catalogs), "current_index": self.index, "max_len": MAX_LEN,
                         "deleted_indexes": sorted(self.deleted)}
            meta = {"created_at": self.created_at,
                    "sessions": {"all_full_ids": [self.session], "last_id": 0, "last_full_id": self.session}}
            lines = [json.dumps(INPUTS), json.dumps(TYPES), json.dumps({}), json.dumps(meta), json.dumps(state)]
            _replace_text(self.path / "manifest.json", "\n".join(lines) + "\n")

    def _write_catalog_manifest(self) -> None:
        with self._manifest_io:
            with self._state:
                if not self.catalogs:
                    return
                stem = self.catalogs[-1][: -len(".catalog")]
                contents = {"path": f"{stem}.catalog_manifest", "created_at": self._catalog_created,
                            "start_index": (len(self.catalogs) - 1) * MAX_LEN,
                            "line_lengths": list(self._catalog_lengths)}
            _replace_text(self.path / f"{stem}.catalog_manifest", json.dumps(contents, sort_keys=True) + "\n")

    def _open_catalog(self) -> None:
        old = self._catalog
        if old is not None:
            self._sync()  # the full catalog is on disk before the next one starts
        name = f"catalog_{len(self.catalogs)}.catalog"
        with self._state:
            self.catalogs.append(name)
            self._catalog_lengths = []
            self._catalog_created = time.time()
        self._write_manifest()  # the manifest names the catalog before it exists: never an unlisted catalog
        self._write_catalog_manifest()
        new = open(self.path / name, "a", encoding="utf-8", newline="\n")
        with self._state:
            self._catalog = new
        if old is not None:
            old.close()

    def _sync(self) -> None:
        """fsync the catalog and the images written since the last sync, and refresh both manifests."""
        with self._state:
            images, self._unsynced_images = self._unsynced_images, []
            # a duplicate descriptor: the recording thread may close the catalog (roll-over) meanwhile
            fd = os.dup(self._catalog.fileno()) if self._catalog is not None else None
        if fd is not None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for i in images:
            try:
                img = os.open(self.images / self.image_name(i), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(img)
            finally:
                os.close(img)
        self._write_catalog_manifest()
        self._write_manifest()

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.sync_every_s):
            try:
                self._sync()
            except OSError as exc:  # reported by the next write()
                self._sync_error = exc
                return

    # -- records -------------------------------------------------------------------------------------------------
    @staticmethod
    def image_name(index: int) -> str:
        """donkeycar's image file name for record ``index``: ``"{index}_cam_image_array_.jpg"``."""
        return f"{index}_{IMAGE_KEY.replace('/', '_')}_.jpg"

    def write(self, image_bgr: np.ndarray, angle: float, throttle: float, mode: str = "user",
              timestamp: float | None = None) -> int:
        """Append one record and return its ``_index``.

        Args:
            image_bgr: ``uint8 HxWx3`` BGR frame, stored as a JPEG (RGB on disk, as every JPEG).
            angle: steering in [-1, 1], positive = right.
            throttle: in [-1, 1].
            mode: ``user`` (a human drove), ``local_angle`` or ``local`` (a pilot drove), as donkeycar names it.
            timestamp: the frame's capture time, epoch seconds (default: now).

        Raises OutputError when the disk refuses the write (full, read-only, gone).
        """
        if self.closed:
            raise RuntimeError("write() on a closed TubWriter")
        if self._sync_error is not None:
            exc = self._sync_error
            raise OutputError(f"cannot write to the tub {self.path}: {exc.strerror or exc}")
        if self.index % MAX_LEN == 0 and len(self.catalogs) <= self.index // MAX_LEN:
            try:
                self._open_catalog()
            except OSError as exc:
                raise OutputError(f"cannot write to the tub {self.path}: {exc.strerror or exc}") from None
        index = self.index
        stamp = int(round((time.time() if timestamp is None else timestamp) * 1000))
        ok, jpeg = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode a frame as JPEG")
        record = {IMAGE_KEY: self.image_name(index), "user/angle": float(angle), "user/throttle": float(throttle),
                  "user/mode": str(mode), "_timestamp_ms": stamp, "_index": index, "_session_id": self.session}
        line = json.dumps(record, allow_nan=False, sort_keys=True) + "\n"
        try:
            with open(self.images / self.image_name(index), "wb") as f:
                f.write(jpeg.tobytes())
            assert self._catalog is not None
            self._catalog.write(line)
            self._catalog.flush()
        except OSError as exc:
            raise OutputError(f"cannot write to the tub {self.path}: {exc.strerror or exc}") from None
        with self._state:
            self._catalog_lengths.append(len(line))
            self._unsynced_images.append(index)
            self._stamps.append(stamp)
            self.index += 1
        return index

    def delete_since(self, since: float) -> list[int]:
        """Mark every record captured at or after ``since`` (epoch seconds) deleted; returns the newly marked
        indexes. Nothing is rewritten: the manifest's ``deleted_indexes`` grows (donkeycar's way)."""
        cut = int(round(since * 1000))
        with self._state:
            fresh = [i for i, stamp in enumerate(self._stamps) if stamp >= cut and i not in self.deleted]
            self.deleted.update(fresh)
        if fresh:
            try:
                self._write_manifest()
            except OSError as exc:
                raise OutputError(f"cannot update {self.path / 'manifest.json'}: {exc.strerror or exc}") from None
        return fresh

    def summary(self) -> TubSummary:
        return TubSummary(str(self.path), self.index, len(self.deleted))

    def close(self) -> TubSummary:
        """Flush, fsync and write the final manifests; safe to call twice. A tub with no record is removed (an
        empty catalog is not a tub either reader accepts)."""
        if self.closed:
            return self.summary()
        self.closed = True
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join()
        try:
            if self.index == 0:
                for p in (self.path / "manifest.json", self.images):
                    if p.is_dir():
                        p.rmdir()
                    elif p.exists():
                        p.unlink()
                self.path.rmdir()
            else:
                self._sync()
        finally:
            if self._catalog is not None:
                self._catalog.close()
        return self.summary()

    def __enter__(self) -> TubWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
