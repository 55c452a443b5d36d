"""Keras model -> .tflite at a chosen precision, through ``tf.lite.TFLiteConverter`` (host side).

Keras 3 on TensorFlow 2.21: ``TFLiteConverter.from_keras_model`` works (it exports a SavedModel internally,
the route upstream recommends for Keras 3). The model is first wrapped with a static batch of 1, which the Edge TPU
compiler and TensorFlow Lite Micro need; a concrete-function route was tried and produced NaNs here, so it is not
used. The representative dataset is the calibration set through :func:`edgecnn.preprocess.prepare`, the same
preprocessing as training.

Two-input models (navigation: ``image`` and ``map``): the representative dataset yields a dict keyed by the
signature's input names (``{"image": 1 x h x w x 3, "map": 1 x S x S x C}``), which the TF 2.21 converter matches
by name (checked here: the .tflite lists ``serving_default_map:0`` *before* ``serving_default_image:0``, so a list
in Keras order would feed the wrong tensors). The quantization debugger, by contrast, zips its dataset with the
interpreter's input order: :func:`debug_dataset` yields a list in that order.

Every conversion is checked by reading the precision back from the produced flatbuffer
(:func:`edgecnn.runtime.inspect.read_model_info`); a mismatch is a bug, never a silent mislabel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from edgecnn.errors import EdgecnnError, ModelError
from edgecnn.runtime.evaluate import Inputs, count_items, tensor_input_name
from edgecnn.runtime.inspect import read_model_info
from edgecnn.runtime.native_stderr import quiet_native_output

PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "int16x8")
IO_TYPES = ("int8", "uint8")
# What read_model_info must find for each precision (the int8 io type decides int8 vs uint8 tensors).
EXPECTED = {"fp32": ("fp32",), "fp16": ("fp16",), "dynamic": ("dynamic",), "int8": ("int8",),
            "int16x8": ("int16x8",)}


def input_names(model) -> tuple[str, ...]:
    """A Keras model's input names, in its input order (``("image",)``, ``("image", "map")``)."""
    return tuple(t.name.split(":")[0] or ("image" if i == 0 else f"input_{i}") for i, t in enumerate(model.inputs))


def batch1(model):
    """``model`` wrapped with static ``1 x ...`` inputs of the same names (Edge TPU and TFLite Micro need static
    shapes); a two-input model keeps both, in order."""
    import keras  # lazy: keras

    names = input_names(model)
    if len(names) == 1:
        inp = keras.Input(shape=tuple(model.inputs[0].shape[1:]), batch_size=1, name=names[0])
        return keras.Model(inp, model(inp), name=model.name)
    ins = [keras.Input(shape=tuple(t.shape[1:]), batch_size=1, name=n) for t, n in zip(model.inputs, names)]
    return keras.Model(ins, model(ins), name=model.name)


def quiet_native_logs():
    """Silence the converter's C++ chatter on fd 1/2 (it prints pages of MLIR logs); Python errors still raise."""
    return quiet_native_output()


def make_converter(model, precision: str, representative: np.ndarray | None = None, io: str = "int8"):
    """A configured ``tf.lite.TFLiteConverter`` for ``precision``.

    Args:
        model: a keras.Model with a static batch of 1 (see :func:`batch1`).
        precision: one of :data:`PRECISIONS`.
        representative: ``float32 N x h x w x c`` normalised model inputs, or ``{input name: float32 N x ...}``
            for a two-input model (needed for int8 and int16x8).
        io: ``"int8"`` or ``"uint8"`` input/output tensors for ``int8``.
    """
    import tensorflow as tf  # lazy: tensorflow

    if precision not in PRECISIONS:
        raise EdgecnnError(f"precision must be one of {', '.join(PRECISIONS)}, got: {precision!r}")
    if io not in IO_TYPES:
        raise EdgecnnError(f"--io must be int8 or uint8, got: {io!r}")
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "fp32":
        return conv
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        conv.target_spec.supported_types = [tf.float16]
    elif precision in ("int8", "int16x8"):
        if representative is None or count_items(representative) == 0:
            raise EdgecnnError(f"{precision} needs a calibration set (--calibration calibration/NAME)")
        conv.representative_dataset = representative_dataset(representative)
        if precision == "int8":
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.uint8 if io == "uint8" else tf.int8
            conv.inference_output_type = tf.uint8 if io == "uint8" else tf.int8
        else:
            conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return conv


def representative_dataset(inputs: Inputs) -> Callable[[], Iterable[list[np.ndarray] | dict[str, np.ndarray]]]:
    """A converter representative-dataset factory over ``inputs``, one item at a time: ``[1 x h x w x c]`` for one
    input, ``{name: 1 x ...}`` (keyed by the signature's input names) for named inputs."""

    def gen():
        for i in range(count_items(inputs)):
            if isinstance(inputs, Mapping):
                yield {k: np.asarray(v[i : i + 1], np.float32) for k, v in inputs.items()}
            else:
                yield [inputs[i : i + 1].astype(np.float32)]

    return gen


def debug_dataset(inputs: Inputs, order: Sequence[str]) -> Callable[[], Iterable[list[np.ndarray]]]:
    """Like :func:`representative_dataset`, but a list in ``order`` (the TFLite interpreter's input names, as
    :func:`edgecnn.runtime.evaluate.tensor_input_name` gives them): the quantization debugger sets inputs by
    position."""
    if not isinstance(inputs, Mapping):
        return representative_dataset(inputs)

    def gen():
        for i in range(count_items(inputs)):
            yield [np.asarray(inputs[k][i : i + 1], np.float32) for k in order]

    return gen


def run_converter(conv) -> bytes:
    """``conv.convert()`` with its logs silenced; converter failures become a ModelError."""
    try:
        with quiet_native_logs():
            return bytes(conv.convert())
    except Exception as exc:
        raise ModelError(f"TFLite conversion failed: {str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}") from exc


def convert(model, precision: str, representative: Inputs | None = None, io: str = "int8") -> bytes:
    """``model`` (keras.Model, any batch) -> .tflite bytes at ``precision``; the precision is verified, and so
    are the input names of a multi-input model (each Keras input found by name in the .tflite)."""
    data = run_converter(make_converter(batch1(model), precision, representative, io))
    got = read_model_info(data)
    names = input_names(model)
    if len(names) > 1 and sorted(tensor_input_name(t.name) for t in got.inputs) != sorted(names):
        raise RuntimeError(f"the converted model's inputs {[t.name for t in got.inputs]} do not carry the Keras "
                           f"input names {list(names)}")
    if got.precision not in EXPECTED[precision]:
        # the converter was asked for this precision: anything else is our bug, not the user's model
        raise RuntimeError(f"conversion to {precision} produced a {got.precision} model (input "
                           f"{got.inputs[0].dtype}, output {got.outputs[0].dtype})")
    if precision == "int8" and any(t.dtype != io for t in got.inputs + got.outputs):
        raise RuntimeError(f"int8 conversion produced {got.inputs[0].dtype} input / {got.outputs[0].dtype} output, "
                           f"expected {io}")
    return data
