"""`inspect` runs a model once: a verifier-valid file that loads but fails on its first inference is reported."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def gather_out_of_bounds(tmp_path_factory):
    """A real .tflite (GATHER from a Keras model) whose constant index is then set out of range: it loads and
    allocates, and only its first inference fails."""
    from edgecnn.tfimport import import_tensorflow

    tf = import_tensorflow()
    import flatbuffers
    import keras
    from ai_edge_litert import schema_py_generated as schema

    inp = keras.Input((8,), batch_size=1)
    model = keras.Model(inp, keras.ops.take(inp, np.array([1, 2], np.int32), axis=1))
    obj = schema.ModelT.InitFromPackedBuf(bytearray(tf.lite.TFLiteConverter.from_keras_model(model).convert()), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    sg = obj.subgraphs[0]
    (gather,) = [op for op in sg.operators
                 if names[max(obj.operatorCodes[op.opcodeIndex].builtinCode,
                              obj.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)] == "GATHER"]
    obj.buffers[sg.tensors[gather.inputs[1]].buffer].data = np.array([1, 99], np.int32).view(np.uint8)
    builder = flatbuffers.Builder(0)
    builder.Finish(obj.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path_factory.mktemp("bad") / "gather_oob.tflite"
    path.write_bytes(bytes(builder.Output()))
    return path


def test_inspect_reports_a_model_that_fails_on_first_inference(cli, gather_out_of_bounds):
    r = cli("inspect", gather_out_of_bounds)
    assert r.clean_error, (r.returncode, r.stderr)
    assert "first inference fails" in r.stderr and "gather index out of bounds" in r.stderr
    assert "GATHER" in r.stdout  # the parsed report is still shown
