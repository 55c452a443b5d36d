"""Data-fault injection: bad files in an image folder, bad records in a Donkey Car tub, and an audit of what the
readers made of them (numpy/OpenCV only).

Image faults (:data:`IMAGE_FAULTS`): zero-byte file, truncated JPEG, PNG bytes named ``.jpg``, CMYK JPEG, greyscale
image in a colour set, a header declaring a huge image (PNG and JPEG alternately), random bytes. The first, second,
sixth and seventh must be *skipped and counted* by :func:`edgecnn.data.imagefolder.scan`; the other three are
valid images in an unusual form and must be *used*, decoded to ``uint8 HxWx3 BGR`` like any other.

Tub faults (:data:`TUB_FAULTS`): a record whose image is missing, a broken JSON line, a NaN angle, an
out-of-range angle; :func:`edgecnn.data.tub.read_tubs` must skip and count each.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecnn.data import imagefolder
from edgecnn.data.steering import BAD_ANGLE, BAD_JSON, MISSING_IMAGE
from edgecnn.data.tub import read_tubs
from edgecnn.preprocess import load_image

IMAGE_FAULTS = ("zero-byte", "truncated JPEG", "PNG named .jpg", "CMYK JPEG", "greyscale", "huge header",
                "random bytes")
# What scan() must do with each: "used", or the reason it counts the file under.
IMAGE_EXPECTED = {"zero-byte": "zero-byte", "truncated JPEG": "truncated", "PNG named .jpg": "used",
                  "CMYK JPEG": "used", "greyscale": "used", "huge header": "too large", "random bytes": "undecodable"}
TUB_FAULTS = ("missing image", "broken JSON line", "NaN angle", "out-of-range angle")


def _encode(ext: str, image: np.ndarray) -> bytes:

    ok, buf = cv2.imencode(ext, image)
    if not ok:  # pragma: no cover - OpenCV always has jpg/png
        raise RuntimeError(f"OpenCV cannot encode {ext}")
    return buf.tobytes()


def _segment(marker: int, payload: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


def cmyk_jpeg(height: int = 16, width: int = 16) -> bytes:
    """A valid baseline JPEG with four (CMYK, Adobe) components, flat colour. OpenCV cannot write CMYK and
    Pillow is not a dependency, so it is assembled here: one quantisation table, one one-symbol Huffman table
    for DC and AC, and every block coded as "DC difference 0, end of block" (2 bits)."""
    out = b"\xff\xd8" + _segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 0))
    out += _segment(0xDB, b"\x00" + bytes([1] * 64))
    out += _segment(0xC0, struct.pack(">BHHB", 8, height, width, 4) + b"".join(bytes([i, 0x11, 0]) for i in range(1, 5)))
    bits = bytes([1] + [0] * 15)
    out += _segment(0xC4, b"\x00" + bits + b"\x00" + b"\x10" + bits + b"\x00")
    out += _segment(0xDA, bytes([4]) + b"".join(bytes([i, 0]) for i in range(1, 5)) + bytes([0, 63, 0]))
    blocks = ((height + 7) // 8) * ((width + 7) // 8) * 4
    return out + b"\x00" * ((blocks * 2 + 7) // 8) + b"\xff\xd9"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_header(kind: str, side: int = 100_000) -> bytes:
    """A PNG or JPEG whose header declares ``side`` x ``side`` pixels with almost no data (a decompression bomb)."""
    if kind == "png":
        ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
                + _png_chunk(b"IEND", b""))
    data = bytearray(_encode(".jpg", np.zeros((8, 8, 3), np.uint8)))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, min(side, 65535), min(side, 65535))
    return bytes(data)


def make_image_fault(kind: str, rng: np.random.Generator, size: int = 32, variant: int = 0) -> tuple[bytes, str]:
    """``(file bytes, extension)`` for one fault of ``kind`` (see :data:`IMAGE_FAULTS`)."""
    colour = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    if kind == "zero-byte":
        return b"", ".jpg"
    if kind == "truncated JPEG":
        data = _encode(".jpg", colour)
        return data[: max(200, len(data) // 2)], ".jpg"
    if kind == "PNG named .jpg":
        return _encode(".png", colour), ".jpg"
    if kind == "CMYK JPEG":
        return cmyk_jpeg(size, size), ".jpg"
    if kind == "greyscale":
        return _encode(".png", colour[:, :, 0]), ".png"
    if kind == "huge header":
        return (huge_header("png"), ".png") if variant % 2 == 0 else (huge_header("jpeg", 30_000), ".jpg")
    if kind == "random bytes":
        return rng.bytes(int(rng.integers(100, 5000))), ".jpg"
    raise ValueError(f"unknown image fault {kind!r}")


@dataclass(frozen=True)
class Injected:
    """One injected fault: the file (or tub record) and its kind."""

    path: str
    kind: str


def inject_imagefolder(root: str | Path, fraction: float = 0.01, seed: int = 0,
                       kinds: tuple[str, ...] = IMAGE_FAULTS) -> list[Injected]:
    """Add faulty files to the class folders of ``root``: ``fraction`` of the existing images, and at least one
    of each kind. Returns what was added. The original images are left alone."""
    root = Path(root)
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    n_images = sum(1 for c in classes for f in c.rglob("*") if f.is_file())
    count = max(len(kinds), math.ceil(fraction * n_images))
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        data, ext = make_image_fault(kind, rng, variant=i // len(kinds))
        slug = kind.lower().replace(" ", "_").replace(".", "")
        path = classes[i % len(classes)] / f"zz_fault_{i:04d}_{slug}{ext}"
        path.write_bytes(data)
        out.append(Injected(str(path.resolve()), kind))
    return out


@dataclass(frozen=True)
class FaultAudit:
    """What a reader made of the injected faults.

    Attributes:
        dataset: ``"imagefolder"`` or ``"tub"``.
        total: files (records) in the data set after injection; injected: faults added.
        per_kind: kind -> ``{"injected": n, "outcome": "used" | reason, "as_expected": bool}``.
        reader_counts: the reader's own ``{reason: count}`` of skipped items.
        usable: items the reader kept.
        ok: every fault handled as expected, and the reader counted every skipped one.
    """

    dataset: str
    total: int
    injected: int
    per_kind: dict[str, dict[str, Any]]
    reader_counts: dict[str, int]
    usable: int
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def audit_imagefolder(root: str | Path, injected: list[Injected]) -> FaultAudit:
    """Scan ``root`` with :func:`edgecnn.data.imagefolder.scan` and check every injected fault's fate: skipped
    under the expected reason (and counted), or used and decoded to 3-channel BGR."""

    folder = imagefolder.scan(root)
    used = {s.path for s in folder.samples}
    per_kind: dict[str, dict[str, Any]] = {}
    expected_skips: Counter[str] = Counter()
    for inj in injected:
        if inj.path in used:
            image = load_image(inj.path)
            outcome = "used" if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 else "bad decode"
        else:
            outcome = imagefolder._check_file(inj.path) or "dropped"
        want = IMAGE_EXPECTED.get(inj.kind, "?")
        if want != "used":
            expected_skips[want] += 1
        entry = per_kind.setdefault(inj.kind, {"injected": 0, "outcome": outcome, "as_expected": True})
        entry["injected"] += 1
        entry["as_expected"] = entry["as_expected"] and outcome == want
        if outcome != entry["outcome"]:
            entry["outcome"] = f"{entry['outcome']}/{outcome}"
    counted = all(folder.skipped.get(reason, 0) >= n for reason, n in expected_skips.items())
    total = len(folder.samples) + sum(folder.skipped.values())
    return FaultAudit("imagefolder", total, len(injected), per_kind, dict(folder.skipped), len(folder.samples),
                      counted and all(v["as_expected"] for v in per_kind.values()))


# ------------------------------------------------------------------------------------------------- tubs


def write_tub(folder: str | Path, records: int = 400, size: int = 32, seed: int = 0) -> Path:
    """A small, valid Donkey Car tub v2: ``records`` 32x32 JPEG frames with angle and throttle in [-1, 1]."""

    tub = Path(folder)
    (tub / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(records):
        angle = float(np.sin(i / 15.0))
        img = np.full((size, size, 3), 60, np.uint8)
        x = int((angle + 1) / 2 * (size - 1))
        img[:, max(0, x - 2) : x + 3] = 220
        img = np.clip(img.astype(int) + rng.integers(-10, 11, img.shape), 0, 255).astype(np.uint8)
        name = f"{i}_cam_image_array_.jpg"
        cv2.imwrite(str(tub / "images" / name), img)
        lines.append(json.dumps({"_index": i, "_session_id": "robustness", "_timestamp_ms": 1000 * i,
                                 "cam/image_array": name, "user/angle": round(angle, 4), "user/mode": "user",
                                 "user/throttle": 0.3}))
    (tub / "catalog_0.catalog").write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest = [
        ["cam/image_array", "user/angle", "user/throttle", "user/mode"],
        ["image_array", "float", "float", "str"],
        {},
        {"created_at": 0, "sessions": {"all_full_ids": ["robustness"], "last_id": 0, "last_full_id": "robustness"}},
        {"paths": ["catalog_0.catalog"], "current_index": records, "max_len": 1000, "deleted_indexes": []},
    ]
    (tub / "manifest.json").write_text("\n".join(json.dumps(m) for m in manifest) + "\n", encoding="utf-8")
    return tub


def inject_tub(tub: str | Path, fraction: float = 0.01, seed: int = 0,
               kinds: tuple[str, ...] = TUB_FAULTS) -> list[Injected]:
    """Damage ``fraction`` of the tub's records (at least one of each kind) in place; returns what was done."""
    tub = Path(tub)
    cat = tub / "catalog_0.catalog"
    lines = cat.read_text(encoding="utf-8").splitlines()
    count = max(len(kinds), math.ceil(fraction * len(lines)))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(lines), size=min(count, len(lines)), replace=False)
    out = []
    for i, line_no in enumerate(sorted(int(c) for c in chosen)):
        kind = kinds[i % len(kinds)]
        rec = json.loads(lines[line_no])
        if kind == "missing image":
            (tub / "images" / rec["cam/image_array"]).unlink()
        elif kind == "broken JSON line":
            lines[line_no] = lines[line_no][: len(lines[line_no]) // 2]
            out.append(Injected(f"{cat}:{line_no + 1}", kind))
            continue
        elif kind == "NaN angle":
            rec["user/angle"] = float("nan")
        elif kind == "out-of-range angle":
            rec["user/angle"] = float(rng.choice([5.0, -3.5, 1e9]))
        lines[line_no] = json.dumps(rec)  # NaN is written as the bare token NaN, as Python's json does
        out.append(Injected(f"{cat}:{line_no + 1}", kind))
    cat.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def audit_tub(tub: str | Path, injected: list[Injected]) -> FaultAudit:
    """Read ``tub`` with :func:`edgecnn.data.tub.read_tubs`; every damaged record must be skipped and counted."""

    reason = {"missing image": MISSING_IMAGE, "broken JSON line": BAD_JSON, "NaN angle": BAD_ANGLE,
              "out-of-range angle": BAD_ANGLE}
    ds = read_tubs(Path(tub))
    lines = len([ln for ln in (Path(tub) / "catalog_0.catalog").read_text().splitlines() if ln.strip()])
    want: Counter[str] = Counter(reason[i.kind] for i in injected)
    per_kind: dict[str, dict[str, Any]] = {}
    for inj in injected:
        entry = per_kind.setdefault(inj.kind, {"injected": 0, "outcome": f"skipped: {reason[inj.kind]}"})
        entry["injected"] += 1
    faults = dict(ds.faults)
    ok = all(faults.get(r, 0) == n for r, n in want.items()) and len(ds.samples) == lines - len(injected)
    for kind, entry in per_kind.items():
        entry["as_expected"] = faults.get(reason[kind], 0) == want[reason[kind]]
    return FaultAudit("tub", lines, len(injected), per_kind, faults, len(ds.samples), ok)
