"""Device side: TensorFlow-free loading and running of .tflite models (numpy, OpenCV, LiteRT only)."""
