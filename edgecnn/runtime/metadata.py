"""Read and write the model's contract inside a .tflite file, without TensorFlow.

The contract is stored as a named entry in the TFLite model's ``metadata`` list (the standard place for
model-level metadata) pointing at a buffer that holds the contract's compact JSON. The file stays a plain
.tflite: LiteRT, benchmark_model, Netron and the Edge TPU compiler ignore metadata they do not know.

Reading (device side) needs only ``flatbuffers``, through the schema reader edgecnn carries
(:mod:`edgecnn.runtime.tflite_schema`), so it works with the legacy ``tflite_runtime`` too. Writing (host side, at
export) rebuilds the flatbuffer with the full schema that ai-edge-litert ships (``ai_edge_litert.schema_py_generated``).
"""

from __future__ import annotations

import flatbuffers

from edgecnn.contract import Contract
from edgecnn.errors import ModelError
from edgecnn.runtime.tflite_schema import FILE_IDENTIFIER, check_identifier, read_model

METADATA_NAME = "edgecnn_contract"


def read_metadata(model: bytes) -> dict[str, bytes]:
    """All named metadata entries of a .tflite as ``{name: bytes}``; ModelError when the file is not a model."""
    root = read_model(model)
    try:
        buffers = root.buffers
        out: dict[str, bytes] = {}
        for entry in root.metadata:
            if entry.buffer < len(buffers):
                out[entry.name] = buffers[entry.buffer].data(model)
        return out
    except Exception as exc:  # a damaged flatbuffer raises anything from IndexError to struct.error
        raise ModelError(f"the model's flatbuffer is damaged ({type(exc).__name__}); re-export it") from exc


def read_contract(model: bytes) -> Contract | None:
    """The edgecnn contract stored in ``model`` (bytes of a .tflite), or None for a third-party model."""
    data = read_metadata(model).get(METADATA_NAME)
    if data is None:
        return None
    return Contract.from_json(data)


def embed_contract(model: bytes, contract: Contract) -> bytes:
    """Return a copy of ``model`` (.tflite bytes) with ``contract`` stored as metadata, replacing an old one.

    Host side (export): needs ai-edge-litert's full schema to rebuild the flatbuffer.
    """
    try:
        from ai_edge_litert import schema_py_generated as schema  # lazy: litert
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelError("writing model metadata needs ai-edge-litert: pip install 'edgecnn[device]'") from exc

    check_identifier(model)
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
    builder.Finish(obj.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())
