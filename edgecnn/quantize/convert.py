"""Keras model -> .tflite at a chosen precision, through ``tf.lite.TFLiteConverter`` (host side).

Keras 3 on TensorFlow 2.21: ``TFLiteConverter.from_keras_model`` works (it exports a SavedModel internally,
the route upstream recommends for Keras 3). The model is first wrapped with a static batch of 1, which the Edge TPU
compiler and TensorFlow Lite Micro need; a concrete-function route was tried and produced NaNs here, so it is not
used. The representative dataset is the calibration set through :func:`edgecnn.preprocess.prepare`, the same
preprocessing as training.

Every conversion is checked by reading the precision back from the produced flatbuffer
(:func:`edgecnn.runtime.inspect.read_model_info`); a mismatch is a bug, never a silent mislabel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from edgecnn.errors import EdgecnnError, ModelError
from edgecnn.runtime.inspect import read_model_info
from edgecnn.runtime.native_stderr import quiet_native_output

PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "int16x8")
IO_TYPES = ("int8", "uint8")
# What read_model_info must find for each precision (the int8 io type decides int8 vs uint8 tensors).
EXPECTED = {"fp32": ("fp32",), "fp16": ("fp16",), "dynamic": ("dynamic",), "int8": ("int8",),
            "int16x8": ("int16x8",)}


def batch1(model):
    """``model`` wrapped with a static ``1 x h x w x c`` input (Edge TPU and TFLite Micro need static shapes)."""
    import keras  # lazy: keras

    shape = tuple(model.inputs[0].shape[1:])
    name = model.inputs[0].name.split(":")[0] or "image"
    inp = keras.Input(shape=shape, batch_size=1, name=name)
    return keras.Model(inp, model(inp), name=model.name)


def quiet_native_logs():
    """Silence the converter's C++ chatter on fd 1/2 (it prints pages of MLIR logs); Python errors still raise."""
    return quiet_native_output()


def make_converter(model, precision: str, representative: np.ndarray | None = None, io: str = "int8"):
    """A configured ``tf.lite.TFLiteConverter`` for ``precision``.

    Args:
        model: a keras.Model with a static batch of 1 (see :func:`batch1`).
        precision: one of :data:`PRECISIONS`.
        representative: ``float32 N x h x w x c`` normalised model inputs (needed for int8 and int16x8).
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
        if representative is None or len(representative) == 0:
            raise EdgecnnError(f"{precision} needs a calibration set (--calibration calibration/NAME)")
        conv.representative_dataset = representative_dataset(representative)
        if precision == "int8":
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.uint8 if io == "uint8" else tf.int8
            conv.inference_output_type = tf.uint8 if io == "uint8" else tf.int8
        else:
            conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return conv


def representative_dataset(inputs: np.ndarray) -> Callable[[], Iterable[list[np.ndarray]]]:
    """A converter representative-dataset factory over ``inputs`` (``float32 N x h x w x c``), one at a time."""

    def gen():
        for i in range(len(inputs)):
            yield [inputs[i : i + 1].astype(np.float32)]

    return gen


def run_converter(conv) -> bytes:
    """``conv.convert()`` with its logs silenced; converter failures become a ModelError."""
    try:
        with quiet_native_logs():
            return bytes(conv.convert())
    except Exception as exc:
        raise ModelError(f"TFLite conversion failed: {str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}") from exc


def convert(model, precision: str, representative: np.ndarray | None = None, io: str = "int8") -> bytes:
    """``model`` (keras.Model, any batch) -> .tflite bytes at ``precision``; the precision is verified."""
    data = run_converter(make_converter(batch1(model), precision, representative, io))
    got = read_model_info(data)
    if got.precision not in EXPECTED[precision]:
        # the converter was asked for this precision: anything else is our bug, not the user's model
        raise RuntimeError(f"conversion to {precision} produced a {got.precision} model (input "
                           f"{got.inputs[0].dtype}, output {got.outputs[0].dtype})")
    if precision == "int8" and any(t.dtype != io for t in got.inputs + got.outputs):
        raise RuntimeError(f"int8 conversion produced {got.inputs[0].dtype} input / {got.outputs[0].dtype} output, "
                           f"expected {io}")
    return data
