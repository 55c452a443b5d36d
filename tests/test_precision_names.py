"""One precision vocabulary (:mod:`edgecnn.runtime.precision`): what the user types to quantize/export/compare is
what inspect and compare print (the read-back names themselves are tested in test_runtime_models.py::test_inspect*
and test_compare_cli.py::test_report_rows)."""

from __future__ import annotations

import pytest

from edgecnn.runtime.precision import PRECISIONS


def test_every_precision_the_user_can_ask_for_is_a_name_that_is_printed():
    convert = pytest.importorskip("edgecnn.quantize.convert", reason="quantize needs TensorFlow (host) at import")
    assert set(convert.PRECISIONS) <= set(PRECISIONS)
    assert set(PRECISIONS) - set(convert.PRECISIONS) == {"uint8"}  # asked for as --precision int8 --io uint8

