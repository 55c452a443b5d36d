"""edgecnn: compact CNNs from training to a camera on a small device.

The package is split along the TensorFlow line:

* device side (numpy, OpenCV, LiteRT only): ``edgecnn.contract``, ``edgecnn.preprocess``,
  ``edgecnn.data.imagefolder``, ``edgecnn.data.shapes``, ``edgecnn.runtime``, ``edgecnn.cli``;
* host side (TensorFlow/Keras): ``edgecnn.models``, ``edgecnn.train``, ``edgecnn.quantize``, ``edgecnn.export``.

Nothing here imports TensorFlow at import time.
"""

__version__ = "0.1.0"
