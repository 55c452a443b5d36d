"""The device loop's output path: the fast readers give exactly what the reference maths gives (issue 17)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgecnn.runtime.adapters import TensorSpec, dequantize, get_output, top_k


class _FakeInterpreter:
    def __init__(self, value: np.ndarray) -> None:
        self.value = value

    def get_tensor(self, index: int) -> np.ndarray:
        return self.value.copy()


@pytest.mark.parametrize(("dtype", "scale", "zero"), [
    ("int8", 0.00390625, -128), ("int8", 0.0173, 3), ("uint8", 0.0078125, 128), ("uint8", 1 / 255, 0),
])
def test_byte_output_table_equals_dequantize_for_every_value(dtype, scale, zero):
    spec = TensorSpec("out", 0, (1, 256), dtype, scale, zero)
    every = np.arange(256, dtype=np.uint8).view(np.dtype(dtype)).reshape(1, 256)
    got = get_output(_FakeInterpreter(every), spec)
    want = dequantize(every, spec).reshape(-1)
    assert got.dtype == np.float32 and got.shape == (256,)
    assert got.tobytes() == want.tobytes()


def test_float_and_int16_outputs_take_the_reference_path():
    f = TensorSpec("out", 0, (1, 3), "float32")
    assert get_output(_FakeInterpreter(np.array([[0.5, -1.0, 2.0]], np.float32)), f).tolist() == [0.5, -1.0, 2.0]
    q = TensorSpec("out", 0, (1, 2), "int16", 0.5, 0)
    assert get_output(_FakeInterpreter(np.array([[-4, 7]], np.int16)), q).tolist() == [-2.0, 3.5]


def _reference_top_k(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")[: max(0, min(k, scores.size))]
    return [(int(i), float(scores[i])) for i in order]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(i == j and (x == y or (math.isnan(x) and math.isnan(y))) for (i, x), (j, y) in zip(a, b))


def test_short_top_k_ranks_as_the_numpy_reference():
    rng = np.random.default_rng(0)
    cases = [np.array([0.1, 0.5, 0.5, 0.2]), np.array([0.0, -0.0, 0.0]), np.array([np.nan, 1.0, np.nan, 0.5]),
             np.array([np.inf, -np.inf, 3.0]), np.array([], np.float32), np.array([7.0])]
    cases += [rng.integers(0, 4, size=n).astype(np.float32) / 4 for n in (2, 5, 10, 64)]  # many ties
    cases += [rng.standard_normal(n).astype(np.float32) for n in (3, 33, 64, 65, 1001)]
    for scores in cases:
        for k in (0, 1, 3, 200):
            assert _same(top_k(scores, k), _reference_top_k(scores, k)), (scores, k)
