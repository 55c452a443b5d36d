"""Device-ready export: bundles (model, contract, labels, model card), C arrays for microcontrollers, Edge TPU
readiness. Scoring a .tflite is the device runtime's (:mod:`edgecnn.runtime.evaluate`, TensorFlow-free)."""
