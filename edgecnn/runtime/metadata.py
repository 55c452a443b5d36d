"""Read and write the model's contract inside a .tflite file, without TensorFlow.

The contract is stored as a named entry in the TFLite model's ``metadata`` list (the standard place for
model-level metadata) pointing at a buffer that holds the contract's compact JSON. The file stays a plain
.tflite: LiteRT, benchmark_model, Netron and the Edge TPU compiler ignore metadata they do not know.

Uses the TFLite schema that ai-edge-litert ships (``ai_edge_litert.schema_py_generated``) and ``flatbuffers``.
"""

from __future__ import annotations

from edgecnn.contract import Contract
from edgecnn.errors import ModelError

METADATA_NAME = "edgecnn_contract"
_FILE_IDENTIFIER = b"TFL3"


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelError("reading model metadata needs ai-edge-litert: pip install 'edgecnn[device]'") from exc
    return schema


def _check_identifier(model: bytes) -> None:
    if len(model) < 8 or model[4:8] != _FILE_IDENTIFIER:
        raise ModelError("not a TFLite model (missing the TFL3 file identifier); re-export it or check the path")


def read_metadata(model: bytes) -> dict[str, bytes]:
    """All named metadata entries of a .tflite as ``{name: bytes}``; ModelError when the file is not a model."""
    _check_identifier(model)
    schema = _schema()
    try:
        root = schema.Model.GetRootAsModel(model, 0)
        out: dict[str, bytes] = {}
        for i in range(root.MetadataLength()):
            entry = root.Metadata(i)
            name = (entry.Name() or b"").decode("utf-8", "replace")
            index = entry.Buffer()
            if index >= root.BuffersLength():
                continue
            buf = root.Buffers(index)
            if buf.DataLength():
                data = buf.DataAsNumpy().tobytes()
            elif buf.Offset() > 1:  # large models keep buffers after the flatbuffer
                data = bytes(model[buf.Offset() : buf.Offset() + buf.Size()])
            else:
                data = b""
            out[name] = data
        return out
    except ModelError:
        raise
    except Exception as exc:  # a damaged flatbuffer raises anything from IndexError to struct.error
        raise ModelError(f"the model's flatbuffer is damaged ({type(exc).__name__}); re-export it") from exc


def read_contract(model: bytes) -> Contract | None:
    """The edgecnn contract stored in ``model`` (bytes of a .tflite), or None for a third-party model."""
    data = read_metadata(model).get(METADATA_NAME)
    if data is None:
        return None
    return Contract.from_json(data)


def embed_contract(model: bytes, contract: Contract) -> bytes:
    """Return a copy of ``model`` (.tflite bytes) with ``contract`` stored as metadata, replacing an old one."""
    import flatbuffers

    _check_identifier(model)
    schema = _schema()
    try:
        obj = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    except Exception as exc:
        raise ModelError(f"the model's flatbuffer is damaged ({type(exc).__name__}); cannot add metadata") from exc
    payload = contract.to_json().encode("utf-8")
    metadata = list(obj.metadata or [])
    existing = [m for m in metadata if (m.name or b"") in (METADATA_NAME, METADATA_NAME.encode())]
    if existing:
        obj.buffers[existing[0].buffer].data = list(payload)
    else:
        buf = schema.BufferT()
        buf.data = list(payload)
        obj.buffers.append(buf)
        entry = schema.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(obj.buffers) - 1
        metadata.append(entry)
        obj.metadata = metadata
    builder = flatbuffers.Builder(len(model) + len(payload) + 1024)
    builder.Finish(obj.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    return bytes(builder.Output())
