"""Device-ready export: bundles (model, contract, labels, model card), C arrays for microcontrollers, Edge TPU
readiness. ``evaluate`` is TensorFlow-free (LiteRT only) so compare and the device side can reuse it."""
