"""Calibration sets and post-training quantization (host side).

``calibration`` (choose, write and read calibration sets) and ``inspect`` (read a .tflite's precision back) are
numpy-only and safe for the device side; ``convert``, ``fidelity``, ``selective`` and ``keras_model`` import
TensorFlow inside their functions.
"""
