"""The TensorFlow-free scoring helpers that compare reuses: input quantization, output dequantization, metrics."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.contract import Contract
from edgecnn.export.evaluate import dequantize_output, quantize_input, score_outputs, steering_of

pytestmark = pytest.mark.device


def test_quantize_input_uses_the_tensor_scale_and_saturates():
    detail = {"dtype": np.int8, "quantization": (1 / 255, -128)}
    x = np.array([-1.0, 0.0, 100 / 255, 1.0, 2.0], np.float32)
    assert quantize_input(x, detail).tolist() == [-128, -128, -28, 127, 127]
    assert quantize_input(x, {"dtype": np.float32, "quantization": (0.0, 0)}).dtype == np.float32


def test_dequantize_widens_before_subtracting():
    # int8 127 - (-128) overflows int8; the result must be 255 * scale, not a wrapped value.
    y = np.array([[127, -128]], np.int8)
    out = dequantize_output(y, {"quantization": (1 / 256, -128)})
    assert out.dtype == np.float32 and out.tolist() == [[255 / 256, 0.0]]


def test_scores_classify_and_steer_heads():
    c = Contract(task="classify", input_height=8, input_width=8, labels=("a", "b"))
    s = score_outputs(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32), np.array([0, 1, 1]), c)
    assert s.metric == "accuracy" and s.value == pytest.approx(2 / 3)
    reg = Contract(task="steer", input_height=8, input_width=8, head="regression")
    assert score_outputs(np.array([[0.5], [-0.5]], np.float32), np.array([0.4, -0.4]), reg).value == pytest.approx(0.1)
    gmm = Contract(task="steer", input_height=8, input_width=8, head="gmm", components=2)
    # equal logits: the mixture mean is the average of the two means
    out = np.array([[0.0, 0.0, -0.6, 0.2, -1.0, -1.0]], np.float32)
    assert steering_of(out, gmm)[0] == pytest.approx(-0.2)
