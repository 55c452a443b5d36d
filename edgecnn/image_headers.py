"""Cheap checks on encoded image bytes before they are decoded: size declared by the header, truncation.

OpenCV allocates whatever an image header declares before it notices there is no data behind it, so a tiny
file can cost gigabytes (a decompression bomb). These guards read only the header bytes. Standard library only;
used by the one decoder (:func:`edgecnn.preprocess.decode_image`) and the image-folder scan. The same headers
give a data set's frame size cheaply (:func:`common_image_size`, the contract's ``source_size``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

# Images whose header promises more than this many pixels are refused before decoding (decompression bombs).
MAX_PIXELS = 50_000_000


def header_ok(data: bytes) -> bool:
    """Cheap guard against decompression bombs: reject PNG/BMP headers that declare huge images."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w = int.from_bytes(data[16:20], "big")
        h = int.from_bytes(data[20:24], "big")
        return w * h <= MAX_PIXELS
    if data[:2] == b"BM" and len(data) >= 26:
        w = abs(int.from_bytes(data[18:22], "little", signed=True))
        h = abs(int.from_bytes(data[22:26], "little", signed=True))
        return w * h <= MAX_PIXELS
    if data[:2] == b"\xff\xd8":
        size = jpeg_size(data)
        return size is None or size[0] * size[1] <= MAX_PIXELS
    return True


# Start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic): they hold the size.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(height, width)`` from a JPEG's start-of-frame header, or None when there is none before the scan.

    OpenCV would otherwise allocate whatever the header declares (a 30000x30000 header costs 2.7 GB and
    many seconds before the decoder notices there is no data)."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no size header before it
            return None
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _JPEG_SOF:
            return int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(data[i + 7 : i + 9], "big")
        i += 2 + length
    return None


def truncated_jpeg(data: bytes) -> bool:
    """True for a JPEG whose last scan is not followed by an end-of-image marker (cut off in transfer).

    Entropy-coded data never contains 0xFF 0xD9 (0xFF is always stuffed), so an EOI after the last start of
    scan means the file is complete; an EOI before it can only belong to an embedded thumbnail."""
    if data[:2] != b"\xff\xd8":
        return False
    sos = data.rfind(b"\xff\xda")
    return sos < 0 or data.rfind(b"\xff\xd9") < sos


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` an image decodes to, from its header alone (PNG, BMP, JPEG), or None when the header
    does not say (another format, a damaged or cut-short header).

    A JPEG whose EXIF orientation turns it by 90 degrees decodes with the sides swapped, as OpenCV applies the
    orientation; that is taken into account. ``data`` may be only the file's first bytes."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"BM" and len(data) >= 26:
        return (abs(int.from_bytes(data[18:22], "little", signed=True)),
                abs(int.from_bytes(data[22:26], "little", signed=True)))
    if data[:2] == b"\xff\xd8":
        hw = jpeg_size(data)
        if hw is None or not min(hw):
            return None
        turned = _exif_orientation(data) in (5, 6, 7, 8)
        return (hw[0], hw[1]) if turned else (hw[1], hw[0])
    return None


def _exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag (1..8) of a JPEG's APP1 segment before its image data; 1 (upright) when absent."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in _JPEG_SOF or marker in (0xDA, 0xD9):
            return 1
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        seg = data[i + 4 : i + 2 + length]
        if marker == 0xE1 and seg[:6] == b"Exif\x00\x00":
            tiff = seg[6:]
            order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
            if order is None or len(tiff) < 8:
                return 1
            ifd = int.from_bytes(tiff[4:8], order)
            count = int.from_bytes(tiff[ifd : ifd + 2], order) if ifd + 2 <= len(tiff) else 0
            for k in range(count):
                e = ifd + 2 + 12 * k
                if e + 12 > len(tiff):
                    break
                if int.from_bytes(tiff[e : e + 2], order) == 0x0112:
                    return int.from_bytes(tiff[e + 8 : e + 10], order)
            return 1
        i += 2 + length
    return 1


def file_image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(width, height)`` of an image file from its header (:func:`image_size`): reads its first 4 KiB, or the
    whole file when the header lies further in (a JPEG's large EXIF block); None when unknown or unreadable."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
            size = image_size(head)
            if size is None and head[:2] == b"\xff\xd8" and len(head) == 4096:
                size = image_size(head + f.read())
    except OSError:
        return None
    return size


def common_image_size(paths: Iterable[str | os.PathLike]) -> tuple[int, int] | None:
    """``(width, height)`` when every image in ``paths`` has that one size (headers only, see
    :func:`file_image_size`); None when the sizes differ, one is unknown, or there are no paths. Stops at the
    first file that differs."""
    common: tuple[int, int] | None = None
    for p in paths:
        size = file_image_size(p)
        if size is None or (common is not None and size != common):
            return None
        common = size
    return common
