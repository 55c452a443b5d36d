"""Device-ready export: bundles (model, contract, labels, model card), C arrays for microcontrollers, Edge TPU
readiness. ``evaluate`` scores a .tflite through the device runtime (TensorFlow-free)."""
