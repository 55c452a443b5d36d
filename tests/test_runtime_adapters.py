"""Pure maths of the device runtime: quantization, top-k, latency statistics (plain arrays, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.runtime.adapters import TensorSpec, dequantize, quantize, top_k
from edgecnn.runtime.stats import LatencyRecorder, StageStats

pytestmark = pytest.mark.device


def spec(dtype: str, scale: float = 0.0, zero: int = 0) -> TensorSpec:
    return TensorSpec("t", 0, (1, 4), dtype, scale, zero)


def test_quantize_uses_the_tensors_own_scale_and_zero_point():
    s = spec("int8", 1 / 255, -128)  # real 0..1 -> -128..127
    q = quantize(np.array([0.0, 0.6, 1.0, 2.0, -1.0], np.float32), s)
    assert q.dtype == np.int8
    assert q.tolist() == [-128, 25, 127, 127, -128]  # out-of-range saturates like the integer kernels


def test_uint8_coral_input_is_the_raw_pixel():
    # Coral MobileNet: scale 1/128, zero point 128; real = (pixel - 128) / 128.
    s = spec("uint8", 1 / 128, 128)
    pixels = np.array([0, 3, 128, 200, 255], np.float32)
    assert quantize((pixels - 128) / 128, s).tolist() == pixels.astype(int).tolist()


def test_dequantize_widens_before_subtracting_the_zero_point():
    s = spec("uint8", 0.5, 128)
    # In uint8, 3 - 128 would wrap to 131; widened it is -125.
    assert dequantize(np.array([3, 128, 255], np.uint8), s).tolist() == [-62.5, 0.0, 63.5]
    assert dequantize(np.array([1, 2], np.uint8), s).dtype == np.float32


def test_round_trip_error_is_at_most_half_a_step():
    s = spec("int8", 0.02, 5)
    x = np.linspace(-2.6, 2.4, 101, dtype=np.float32)
    assert np.max(np.abs(dequantize(quantize(x, s), s) - x)) <= 0.01 + 1e-6


def test_float_tensors_pass_through():
    x = np.array([0.25, -3.0], np.float32)
    assert quantize(x, spec("float32")).tolist() == x.tolist()
    assert dequantize(x, spec("float32")).tolist() == x.tolist()
    assert quantize(x, spec("float16")).dtype == np.float16


def test_top_k_orders_by_score_and_keeps_lower_index_on_ties():
    assert top_k(np.array([0.1, 0.5, 0.5, 0.2]), 3) == [(1, 0.5), (2, 0.5), (3, pytest.approx(0.2))]
    assert top_k(np.array([1.0, 2.0]), 10) == [(1, 2.0), (0, 1.0)]


def test_tensor_spec_from_interpreter_details():
    d = {"name": "x", "index": 3, "shape": np.array([1, 8, 8, 3]), "dtype": np.int8, "quantization": (0.5, -1),
         "quantization_parameters": {"scales": np.array([0.5]), "zero_points": np.array([-1])}}
    s = TensorSpec.from_details(d)
    assert (s.shape, s.dtype, s.scale, s.zero_point, s.quantized) == ((1, 8, 8, 3), "int8", 0.5, -1, True)


def test_stage_percentiles():
    s = StageStats.of("invoke", list(range(1, 101)))
    assert (s.count, s.p50_ms, round(s.p90_ms, 1), round(s.p99_ms, 2), s.max_ms) == (100, 50.5, 90.1, 99.01, 100)


def test_recorder_excludes_warmup():
    rec = LatencyRecorder(warmup=3)
    for i in range(10):
        rec.start_frame()
        rec.add("invoke", 100.0 if i < 3 else 1.0)  # slow first frames: must not show in the tail
        rec.end_frame()
    st = rec.summary()
    assert st.frames == 10 and st.warmup == 3
    assert st.stage("invoke").count == 7 and st.stage("invoke").p99_ms == 1.0
    assert st.fps > 0


def test_short_runs_still_report():
    rec = LatencyRecorder(warmup=5)
    for _ in range(2):
        rec.start_frame()
        rec.add("invoke", 2.0)
        rec.end_frame()
    assert rec.summary().stage("invoke").count == 1
