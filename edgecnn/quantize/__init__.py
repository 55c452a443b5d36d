"""Calibration sets and post-training quantization (host side).

``calibration`` (choose, write and read calibration sets) is numpy-only and safe for the device side; ``convert``,
``fidelity``, ``selective`` and ``keras_model`` import TensorFlow inside their functions. A .tflite's precision is
read back with :func:`edgecnn.runtime.inspect.read_model_info`.
"""
