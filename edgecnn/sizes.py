"""Image sizes as users type and read them: always ``WIDTHxHEIGHT`` (as cameras are specified).

One parser and one formatter, used by every command that takes or prints a size, so ``--img-size 200x66`` is
printed back as ``200x66`` and never as ``66x200``. Internally arrays are ``H x W``; only text is ``WxH``.
Standard library only.
"""

from __future__ import annotations

from edgecnn.errors import OptionError


def parse_size(text: str, option: str = "--img-size", minimum: int = 8, maximum: int = 4096,
               square_ok: bool = True) -> tuple[int, int]:
    """``"64"`` -> ``(64, 64)``; ``"160x120"`` -> ``(160, 120)``, as ``(width, height)`` in pixels.

    Raises OptionError naming ``option`` when the text is malformed or a side is outside
    ``[minimum, maximum]`` pixels.
    """
    value = str(text).strip().lower()
    try:
        if "x" in value:
            w, h = (int(v) for v in value.split("x"))
        elif square_ok:
            w = h = int(value)
        else:
            raise ValueError(value)
    except ValueError:
        shape = "N or WIDTHxHEIGHT" if square_ok else "WIDTHxHEIGHT"
        raise OptionError(f"{option} must look like {shape}, e.g. 160x120, got: {text!r}") from None
    if not (minimum <= w <= maximum and minimum <= h <= maximum):
        raise OptionError(f"{option} sides must be between {minimum} and {maximum} pixels, got: {text!r}")
    return w, h


def format_size(width: int, height: int) -> str:
    """``(160, 120)`` -> ``"160x120"`` (width first, like :func:`parse_size` reads it)."""
    return f"{int(width)}x{int(height)}"


def format_hw(shape: tuple[int, ...] | list[int]) -> str:
    """An ``(height, width, ...)`` array shape -> ``"WIDTHxHEIGHT"`` (channels dropped)."""
    return format_size(shape[1], shape[0])
