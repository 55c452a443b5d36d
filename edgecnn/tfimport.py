"""Import TensorFlow quietly (host side only).

TensorFlow 2.21 prints several lines of C++ start-up chatter (oneDNN, missing CUDA drivers, cuInit) through absl
before any Python logging setting applies; ``TF_CPP_MIN_LOG_LEVEL`` no longer silences them. We point file
descriptor 2 away (edgecnn.runtime.native_stderr) while TensorFlow starts and lists its devices, so users see our
output and real errors only. Set ``EDGECNN_TF_VERBOSE=1`` to see everything.
"""

from __future__ import annotations

import contextlib
import os

from edgecnn.errors import EdgecnnError
from edgecnn.runtime.native_stderr import captured_native_output

_DONE = False


def import_tensorflow():
    """Return the ``tensorflow`` module, imported without start-up noise on stderr."""
    global _DONE
    if not _DONE:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            with contextlib.nullcontext() if os.environ.get("EDGECNN_TF_VERBOSE") else captured_native_output((2,)):
                import tensorflow as tf  # lazy: tensorflow

                tf.config.list_physical_devices()
                # Python-side warnings (retracing notices from Keras' predict) are noise for users too.
                tf.get_logger().setLevel("ERROR")
                import keras  # lazy: keras  # noqa: F401
        except ImportError as exc:
            raise EdgecnnError(
                f"this command needs TensorFlow ({exc}); install the training extra: pip install 'edgecnn[train]'"
            ) from exc
        _DONE = True
    import tensorflow as tf  # lazy: tensorflow

    return tf
