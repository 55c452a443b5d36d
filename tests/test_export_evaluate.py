"""The TensorFlow-free scoring helpers of export (input quantization and output dequantization are the device
runtime's, tested in test_runtime_adapters.py)."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.contract import Contract
from edgecnn.runtime.evaluate import score_outputs, steering_of

pytestmark = pytest.mark.device


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
    # decoded as on the device: clipped to the contract's steering range
    assert steering_of(np.array([[1.7], [-0.3]], np.float32), reg).tolist() == pytest.approx([1.0, -0.3])
