"""The model's contract: what a model expects as input and what its outputs mean.

It travels with the model: beside ``model.keras`` in a run folder (``contract.json``) and inside every exported
.tflite (see :mod:`edgecnn.runtime.metadata`), so the device never has to be told ``--mean``/``--std`` again.
Standard library only: the device side reads it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any

from edgecnn.atomic import write_json
from edgecnn.errors import ModelError
from edgecnn.navmap import MapSpec, PoseNoise

FORMAT_VERSION = 1
TASKS = ("classify", "steer", "segment", "navigate")
HEADS = ("softmax", "regression", "gmm", "class-map")
COLOR_ORDERS = ("RGB", "BGR")
# How a frame larger than the model input is shrunk (see edgecnn.preprocess.resize). "area" and "area-pyramid"
# filter (no aliasing), "supersample" (2x2 bilinear samples per pixel) mostly; the others are plain OpenCV
# interpolations. Enlarging is always linear.
RESIZE_METHODS = ("area", "area-pyramid", "supersample", "linear", "nearest", "cubic")

# Named input ranges: pixel p in 0..255 becomes (p - mean) / std.
INPUT_RANGES: dict[str, tuple[float, float]] = {
    "0,1": (0.0, 255.0),
    "-1,1": (127.5, 127.5),
    "0,255": (0.0, 1.0),
}


@dataclass(frozen=True)
class Contract:
    """How to feed a model and read its outputs.

    Attributes:
        task: ``"classify"``, ``"steer"``, ``"segment"`` or ``"navigate"`` (steering from the camera and a map:
            two inputs, see ``map``).
        input_height, input_width: the (image) input size in pixels.
        channels: 3 (colour) or 1 (grey).
        color_order: channel order the model was trained on, ``"RGB"`` or ``"BGR"``.
        mean, std: normalisation, per channel: ``x = (pixel - mean) / std`` with pixel a float in 0..255.
        resize: how a larger frame is shrunk to the input size, one of :data:`RESIZE_METHODS`: ``"area"``
            (OpenCV INTER_AREA, exact at any factor; fast when the factor is an integer), ``"area-pyramid"``
            (exact 2x2 means while the frame is at least twice the input, then one INTER_AREA step: as
            alias-free, 3-7x faster for large frames, but not bit-identical to ``"area"``), ``"supersample"``
            (bilinear to twice the input size, then exact 2x2 means: about 12x faster than ``"area"`` from
            640x480 to 64x64, some aliasing left at large factors), ``"linear"``,
            ``"nearest"``, ``"cubic"``. Enlarging always uses linear interpolation. Training and the device both
            resize through :func:`edgecnn.preprocess.resize` with this method.
        source_size: ``(width, height)`` of the frames the model was trained on (a tub recorded at 160x120 ->
            ``(160, 120)``), or ``()`` when unknown or mixed. The device opens its camera at this size, so the
            camera does the shrinking the training data had.
        crop: ``(top, bottom)``: rows removed from the top and the bottom of every frame before it is resized
            (a Donkey Car tub's sky: ``(40, 0)``), or ``()`` for none. Counted in rows of a ``source_size`` frame
            when the contract has one, and scaled to the height ``H`` of the frame at hand (``top * H /
            source_height`` rounded half up, the same for ``bottom``: a camera opened at twice the size loses
            twice the rows); without ``source_size`` in rows of the frame as given. At least one row must remain
            (of ``source_size``; a frame that would lose every row is refused by :func:`crop_rows`). Applied by
            :func:`edgecnn.preprocess.to_model_pixels` (the one preprocessing) and to segmentation masks alike.
            A contract written before ``crop`` existed reads with ``crop == ()``.
        labels: class names for ``classify`` and ``segment`` (index order; for ``segment`` index 0 is
            ``background``); empty for ``steer``.
        head: ``"softmax"`` (class probabilities), ``"regression"`` (steering [, throttle]) or ``"gmm"``
            (mixture over steering: K logits, K means, K log-sigmas) or ``"class-map"`` (``segment``: a per-pixel
            class map, output ``(1, h, w, K)`` scores over ``labels`` at every input pixel).
        steering_range: steering output range, ``(-1.0, 1.0)``; positive = right.
        throttle: the model also outputs throttle.
        components: number of Gaussian components for the ``gmm`` head.
        arch: architecture name in the registry.
        map: ``navigate`` only (empty otherwise): the second input, ``{"spec": MapSpec.to_dict(), "routed": bool,
            "pose_noise": PoseNoise.to_dict(), "input": "map"}``: the raster's geometry and channels
            (:class:`edgecnn.navmap.MapSpec`), whether the route channel is drawn, the pose error the model was
            trained with, and the input's name. The map input is ``uint8`` 0/255 rasters from
            :func:`edgecnn.navmap.rasterise` scaled to 0..1 (``x = raster / 255``) before quantization; the
            image fields above describe the image input (named ``"image"``) as for ``steer``. Build it with
            :func:`map_entry`.
        extra: free-form provenance (calibration sha256, versions, ...).
    """

    task: str
    input_height: int
    input_width: int
    channels: int = 3
    color_order: str = "RGB"
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (255.0, 255.0, 255.0)
    resize: str = "area"
    labels: tuple[str, ...] = ()
    head: str = "softmax"
    steering_range: tuple[float, float] = (-1.0, 1.0)
    throttle: bool = False
    components: int = 0
    arch: str = ""
    source_size: tuple[int, ...] = ()
    crop: tuple[int, ...] = ()
    map: dict[str, Any] = field(default_factory=dict, hash=False)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ModelError(f"contract task must be one of {TASKS}, got: {self.task!r}")
        if self.head not in HEADS:
            raise ModelError(f"contract head must be one of {HEADS}, got: {self.head!r}")
        if self.color_order not in COLOR_ORDERS:
            raise ModelError(f"contract colour order must be RGB or BGR, got: {self.color_order!r}")
        if self.channels not in (1, 3):
            raise ModelError(f"contract channels must be 1 or 3, got: {self.channels!r}")
        if self.input_height <= 0 or self.input_width <= 0:
            raise ModelError(f"contract input size must be positive, got: {self.input_height}x{self.input_width}")
        if len(self.mean) != self.channels or len(self.std) != self.channels or min(self.std) <= 0:
            raise ModelError(f"contract mean/std must have {self.channels} entries and std > 0")
        if self.resize not in RESIZE_METHODS:
            raise ModelError(f"contract resize must be one of {', '.join(RESIZE_METHODS)}, got: {self.resize!r}")
        if self.source_size and (len(self.source_size) != 2 or min(self.source_size) <= 0):
            raise ModelError(f"contract source_size must be (width, height) in pixels, got: {self.source_size!r}")
        object.__setattr__(self, "crop", _checked_crop(self.crop, self.source_size))
        if self.task == "classify" and not self.labels:
            raise ModelError("a classification contract needs its labels")
        if (self.task == "segment") != (self.head == "class-map"):
            raise ModelError(f"a segment contract has head 'class-map' and only it, got task {self.task!r} with "
                             f"head {self.head!r}")
        if self.task == "segment" and len(self.labels) < 2:
            raise ModelError("a segmentation contract needs its class names (background first, at least 2)")
        if self.task == "navigate":
            if self.head != "gmm" or self.components <= 0:
                raise ModelError(f"a navigate contract has head 'gmm' with components > 0, got head {self.head!r} "
                                 f"with {self.components} components")
            object.__setattr__(self, "map", _checked_map(self.map))
        elif self.map:
            raise ModelError(f"only a navigate contract has a map input; this one is {self.task!r}")

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return (self.input_height, self.input_width)

    def crop_rows(self, height: int) -> tuple[int, int]:
        """``(top, bottom)`` rows to remove from a frame ``height`` rows tall (see ``crop``); ``(0, 0)`` without a
        crop. ModelError (one line) when the crop would leave no row of that frame."""
        return crop_rows(self.crop, self.source_size, height)

    @property
    def map_spec(self) -> MapSpec | None:
        """The map input's :class:`~edgecnn.navmap.MapSpec` (``navigate``), else None."""
        return MapSpec.from_dict(self.map["spec"]) if self.map else None

    @property
    def pose_noise(self) -> PoseNoise | None:
        """The pose error the model was trained with (``navigate``), else None."""
        return PoseNoise.from_dict(self.map["pose_noise"]) if self.map else None

    @property
    def num_outputs(self) -> int:
        """Width of the model's output vector (classes per pixel for ``segment``)."""
        if self.task in ("classify", "segment"):
            return len(self.labels)
        if self.head == "gmm":
            return 3 * self.components
        return 2 if self.throttle else 1

    def replace(self, **changes: Any) -> Contract:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("mean", "std", "labels", "steering_range", "source_size", "crop"):
            d[k] = list(d[k])
        d["map"] = json.loads(json.dumps(self.map))  # a deep, JSON-shaped copy
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Contract:
        """Build from a dict; unknown keys (from a newer edgecnn) are ignored, missing optional ones take their
        defaults (a contract written before ``source_size``, ``crop`` or ``map`` existed reads with
        ``source_size == ()``, ``crop == ()``, ``map == {}``)."""
        if not isinstance(d, dict):
            raise ModelError(f"a contract must be a JSON object, got: {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        for k in ("mean", "std", "labels", "steering_range", "source_size", "crop"):
            if k in kw:
                kw[k] = tuple(kw[k] or ())
        if "map" in kw and kw["map"] is None:
            kw["map"] = {}
        try:
            return cls(**kw)
        except TypeError as exc:
            raise ModelError(f"contract is incomplete or malformed: {exc}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> Contract:
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelError(f"contract is not valid JSON: {exc}") from exc

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Contract:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"no contract at {path}")
        return cls.from_json(path.read_text(encoding="utf-8"))


MAP_INPUT = "map"  # the map input's name in a navigate model (the image input is "image")


def map_entry(spec: MapSpec, pose_noise: PoseNoise | None = None) -> dict[str, Any]:
    """The ``map`` field of a navigate contract for ``spec`` (routed when it has the ``"route"`` channel) and the
    training pose error (default :class:`~edgecnn.navmap.PoseNoise`)."""
    return {"spec": spec.to_dict(), "routed": spec.routed, "pose_noise": (pose_noise or PoseNoise()).to_dict(),
            "input": MAP_INPUT}


def _checked_crop(crop: Any, source_size: tuple[int, ...]) -> tuple[int, ...]:
    """``crop`` as ``()`` or ``(top, bottom)`` ints; ModelError (one line) unless it is two whole numbers >= 0 that
    leave at least one row of a ``source_size`` frame (when there is one). ``(0, 0)`` becomes ``()``."""
    try:
        rows = tuple(crop)
    except TypeError:
        rows = None
    if rows == ():
        return ()
    if (rows is None or len(rows) != 2 or any(isinstance(r, bool) or not isinstance(r, Integral) for r in rows)
            or min(rows) < 0):
        raise ModelError(f"contract crop must be (top, bottom) whole rows >= 0, got: {crop!r}")
    if rows == (0, 0):
        return ()
    if len(source_size) == 2 and rows[0] + rows[1] >= source_size[1]:
        raise ModelError(f"contract crop {rows[0]},{rows[1]} removes all {source_size[1]} rows of its "
                         f"{source_size[0]}x{source_size[1]} source frames")
    return tuple(int(r) for r in rows)


def crop_rows(crop: tuple[int, ...], source_size: tuple[int, ...], height: int) -> tuple[int, int]:
    """``(top, bottom)`` rows to remove from a frame ``height`` rows tall for a contract's ``crop`` and
    ``source_size`` (see :class:`Contract`): scaled by ``height / source_height`` and rounded half up when
    ``source_size`` is known, else as given. ``(0, 0)`` for no crop. ModelError (one line) when no row would
    remain."""
    if not crop:
        return (0, 0)
    top, bottom = int(crop[0]), int(crop[1])
    if len(source_size) == 2 and source_size[1] != height:
        src = int(source_size[1])
        top, bottom = (2 * top * height + src) // (2 * src), (2 * bottom * height + src) // (2 * src)
    if top + bottom >= height:
        raise ModelError(f"the model's crop ({top} rows at the top, {bottom} at the bottom) leaves no row of a "
                         f"frame {height} rows tall")
    return (top, bottom)


def _checked_map(m: Any) -> dict[str, Any]:
    """A navigate contract's ``map`` in its canonical form; ModelError (one line) when it is missing or malformed."""
    if not isinstance(m, dict) or "spec" not in m:
        raise ModelError("a navigate contract needs its map input described: map = {'spec': ..., 'routed': ..., "
                         "'pose_noise': ..., 'input': 'map'} (edgecnn.contract.map_entry)")
    try:
        spec = MapSpec.from_dict(m["spec"])
        noise = PoseNoise.from_dict(m.get("pose_noise") or {})
    except (TypeError, ValueError) as exc:
        raise ModelError(f"the contract's map input is malformed: {exc}") from exc
    routed = m.get("routed", spec.routed)
    if not isinstance(routed, bool) or routed != spec.routed:
        raise ModelError(f"the contract's map says routed={routed!r} but its channels are {list(spec.channels)}")
    name = m.get("input", MAP_INPUT)
    if not isinstance(name, str) or not name:
        raise ModelError(f"the contract's map input name must be a non-empty string, got: {name!r}")
    return {"spec": spec.to_dict(), "routed": routed, "pose_noise": noise.to_dict(), "input": name}


def normalisation_for_range(name: str, channels: int = 3) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) for a named input range ``"0,1"``, ``"-1,1"`` or ``"0,255"``."""
    if name not in INPUT_RANGES:
        raise ModelError(f"input range must be one of {', '.join(INPUT_RANGES)}, got: {name!r}")
    m, s = INPUT_RANGES[name]
    return (m,) * channels, (s,) * channels
