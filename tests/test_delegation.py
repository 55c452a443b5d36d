"""The delegate report (which nodes XNNPACK took, what stayed on the reference kernels) and benchmark --compare-to.

The graph walk is checked on hand-made op lists; the report on real files: the shipped shapes model (XNNPACK has
no int8 SOFTMAX, so one node stays on the CPU), the Coral MobileNet (uint8 I/O, per-tensor weights, two
partitions around its AVERAGE_POOL_2D) and ``--delegate none``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO

from edgecnn.runtime.delegation import DelegateReport, delegate_report, partition_nodes
from edgecnn.runtime.interpreter import make_interpreter

pytestmark = pytest.mark.device

SHAPES = REPO / "firmware_models" / "shapes_compact" / "model_int8.tflite"
CORAL = REPO.parent / "shared" / "data" / "coral" / "mobilenet_v1_0.25_128_quant.tflite"


def _op(index, name, inputs, outputs):
    return {"index": index, "op_name": name, "inputs": np.asarray(inputs), "outputs": np.asarray(outputs)}


def test_partitions_from_the_delegate_nodes_boundaries():
    # 0 -> conv -> 1 -> relu -> 2 -> cumsum (CPU) -> 3 -> fc -> 4 ; weights 10, 11 have no producer
    ops = [_op(0, "CONV_2D", [0, 10], [1]), _op(1, "RELU", [1], [2]), _op(2, "CUMSUM", [2], [3]),
           _op(3, "FULLY_CONNECTED", [3, 11], [4]),
           _op(4, "DELEGATE", [0, 10], [2]), _op(5, "DELEGATE", [3, 11], [4])]
    n, parts = partition_nodes(ops)
    assert n == 4 and parts == [{0, 1}, {3}]
    assert partition_nodes(ops[:4]) == (4, [])


def _need(path):
    if not path.is_file():
        pytest.skip(f"{path} is not here")


def test_shipped_model_keeps_only_softmax_on_the_cpu():
    _need(SHAPES)
    r = delegate_report(make_interpreter(SHAPES, threads=1))
    assert (r.nodes, r.delegated, r.partitions, r.cpu_ops) == (14, 13, 1, {"SOFTMAX": 1})
    assert r.io_dtypes == ("int8", "int8") and r.per_tensor_weights == 0
    assert not any("uint8" in w for w in r.warnings) and any("SOFTMAX" in w for w in r.warnings)
    none = delegate_report(make_interpreter(SHAPES, threads=1, delegate="none"), "none")
    assert none.delegated == 0 and sum(none.cpu_ops.values()) == 14 and "none" in none.format()
    assert DelegateReport.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_legacy_uint8_model_is_warned_about():
    _need(CORAL)
    r = delegate_report(make_interpreter(CORAL, threads=1))
    assert r.partitions == 2 and r.cpu_ops == {"AVERAGE_POOL_2D": 1, "SOFTMAX": 1}
    assert r.per_tensor_weights == 15 + 13  # every CONV_2D (the classifier is a 1x1 conv) and DEPTHWISE_CONV_2D
    text = r.format()
    assert "uint8 input/output" in text and "per-tensor" in text and "29 of 31 nodes" in text


def test_benchmark_reports_delegation_and_compares_to_a_twin():
    _need(SHAPES)
    from edgecnn.cli.cmd_benchmark import cli

    res = CliRunner().invoke(cli, [str(SHAPES), "--threads", "1", "--runs", "3", "--warmup", "0", "--json",
                                   "--compare-to", str(SHAPES)])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output[res.output.index("{"):])
    assert d["delegation"]["cpu_ops"] == {"SOFTMAX": 1} and d["twin"]["model"] == str(SHAPES)
    assert d["speedup"] > 0 and d["not_faster"] == (d["speedup"] <= 1.0)
