"""The names of a model's precision: one vocabulary, as the user types them, for every command.

``edgecnn quantize --precision`` and ``compare --precisions`` take these names; ``inspect`` and ``compare`` print
what a .tflite really holds (read from its tensors, never from its file name) in the same names. Standard library
only.
"""

from __future__ import annotations

FP32 = "fp32"  # float32 weights and activations
FP16 = "fp16"  # float16 weights, float32 activations
DYNAMIC = "dynamic"  # int8 weights, float activations (dynamic-range quantization)
INT8 = "int8"  # full-integer: int8 weights and activations
UINT8 = "uint8"  # legacy full-integer with uint8 activations (older converters, the Coral zoo)
INT16X8 = "int16x8"  # int16 activations, int8 weights

PRECISIONS = (FP32, FP16, DYNAMIC, INT8, UINT8, INT16X8)
KERAS_REFERENCE = f"{FP32} (keras)"  # the compare row of the Keras model itself
