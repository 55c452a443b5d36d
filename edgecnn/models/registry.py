"""A registry of architectures by name, timm style: ``register_model``, ``create_model``, ``list_models``.

Architectures live in ``edgecnn/models/arch_<name>.py`` modules that this registry imports on first use; each
decorates a builder ``fn(input_shape, num_outputs, **kw) -> keras.Model`` with ``@register_model("name", ...)``.
Reading the specs (``list_models``, ``get_spec``: names, tasks, ``default_size``) needs no Keras: the arch modules
import Keras inside their builders. The builder returns the model *without* preprocessing: inputs are already normalised by
:func:`edgecnn.preprocess.prepare`, so the exported model and the device agree by construction.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.errors import OptionError


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture.

    Attributes:
        name: registry name (``--arch``).
        builder: ``fn(input_shape=(h, w, c), num_outputs=N, **kw) -> keras.Model``.
        tasks: tasks it is meant for (``"classify"``, ``"steer"``, ``"segment"``).
        summary: one line for ``edgecnn models``.
        default_size: (height, width) in pixels it was designed for; ``edgecnn train`` uses it unless
            ``--img-size`` says otherwise.
        min_size: the smallest (height, width) its unpadded convolutions and pools leave at least one pixel of
            (``edgecnn train`` refuses a smaller ``--img-size`` in one line); (1, 1) for padded architectures.
    """

    name: str
    builder: Callable[..., Any]
    tasks: tuple[str, ...]
    summary: str
    default_size: tuple[int, int]
    min_size: tuple[int, int] = (1, 1)


_REGISTRY: dict[str, ArchSpec] = {}
_LOADED = False


def register_model(name: str, tasks: tuple[str, ...], summary: str, default_size: tuple[int, int] = (64, 64),
                   min_size: tuple[int, int] = (1, 1)):
    """Decorator: register ``builder`` under ``name``."""

    def deco(builder: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = ArchSpec(name, builder, tuple(tasks), summary, tuple(default_size), tuple(min_size))
        return builder

    return deco


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    for p in sorted(Path(__file__).parent.glob("arch_*.py")):
        importlib.import_module(f"edgecnn.models.{p.stem}")
    _LOADED = True


def list_models(task: str | None = None) -> list[ArchSpec]:
    """Registered architectures (optionally only those for ``task``), sorted by name."""
    _load_all()
    return [s for _, s in sorted(_REGISTRY.items()) if task is None or task in s.tasks]


def get_spec(name: str) -> ArchSpec:
    """The spec of ``name``; OptionError naming the known ones when it is unknown."""
    _load_all()
    if name not in _REGISTRY:
        raise OptionError(f"unknown architecture {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, input_shape: tuple[int, int, int], num_outputs: int, **kw: Any):
    """Build architecture ``name`` for ``input_shape`` (h, w, c) with ``num_outputs`` outputs."""
    return get_spec(name).builder(input_shape=tuple(input_shape), num_outputs=int(num_outputs), **kw)


def count_macs(model) -> int:
    """Multiply-accumulates of one forward pass (conv, transposed conv, depthwise conv, dense), from the built
    Keras model. Resizes (UpSampling2D) and element-wise ops are not counted."""
    import keras  # lazy: keras

    macs = 0
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            out = layer.output.shape
            kh, kw = layer.kernel_size
            macs += out[1] * out[2] * kh * kw * out[3]
        elif isinstance(layer, keras.layers.SeparableConv2D):
            inp, out = layer.input.shape, layer.output.shape
            kh, kw = layer.kernel_size
            macs += out[1] * out[2] * (kh * kw * inp[3] + inp[3] * out[3])
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            # Every input pixel scatters a kh x kw x cout patch: in_h * in_w * kh * kw * cin * cout.
            inp, out = layer.input.shape, layer.output.shape
            kh, kw = layer.kernel_size
            macs += inp[1] * inp[2] * kh * kw * inp[3] * out[3]
        elif isinstance(layer, keras.layers.Conv2D):
            inp, out = layer.input.shape, layer.output.shape
            kh, kw = layer.kernel_size
            macs += out[1] * out[2] * kh * kw * (inp[3] // layer.groups) * out[3]
        elif isinstance(layer, keras.layers.Dense):
            macs += int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    return int(macs)


def _all_layers(model):
    import keras  # lazy: keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer
