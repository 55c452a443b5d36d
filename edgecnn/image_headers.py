"""Cheap checks on encoded image bytes before they are decoded: size declared by the header, truncation.

OpenCV allocates whatever an image header declares before it notices there is no data behind it, so a tiny
file can cost gigabytes (a decompression bomb). These guards read only the header bytes. Standard library only;
used by the one decoder (:func:`edgecnn.preprocess.decode_image`) and the image-folder scan.
"""

from __future__ import annotations

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
