"""Damaged copies of a .tflite model, for the mutation campaign (device side: numpy, flatbuffers, LiteRT schema).

Six kinds of mutation, from blunt to surgical:

- ``truncate``: the file cut at a random length (a partial download or copy);
- ``byte_flip``: 1-16 random bytes anywhere replaced by random values (mostly lands in weights);
- ``table_flip``: 1-8 random bytes replaced *inside the flatbuffer's tables* (offsets, vtables, enum and index
  fields), i.e. outside the weight blobs, where the damage reaches the parser;
- ``oversized_dim``: one tensor dimension set to a huge, zero or negative value (repacked, verifier-valid);
- ``swapped_index``: operator or subgraph tensor indices swapped, pointed at another tensor or out of range;
- ``field_value``: a tensor's type, buffer index or an operator's op-code index set to a wrong value.

Every mutant is reproducible from ``(seed, number)``. The structural kinds repack the model with
``ai_edge_litert.schema_py_generated`` and ``flatbuffers``, so they pass the flatbuffer verifier and test the
interpreter itself, which is where crashes come from.
"""

from __future__ import annotations

from dataclasses import dataclass

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

KINDS = ("truncate", "byte_flip", "table_flip", "oversized_dim", "swapped_index", "field_value")


@dataclass(frozen=True)
class Mutant:
    """One damaged model.

    Attributes:
        number: position in the campaign (with the seed, enough to make it again).
        source: name of the model it was made from (``int8``, ``fp32``).
        kind: one of :data:`KINDS`.
        detail: what exactly was changed, for the report.
        data: the damaged file's bytes.
    """

    number: int
    source: str
    kind: str
    detail: str
    data: bytes


def payload_ranges(data: bytes) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` byte ranges of the buffers' data (weights, metadata blobs) inside ``data``.

    Everything else is flatbuffer structure: root table, vtables, vectors of offsets, scalars, strings.
    """

    model = schema.Model.GetRootAsModel(bytearray(data), 0)
    ranges = []
    for i in range(model.BuffersLength()):
        buf = model.Buffers(i)
        o = buf._tab.Offset(4)  # field 0 of Buffer: data (vector of ubyte)
        if o:
            start = buf._tab.Vector(o)
            ranges.append((start, start + buf._tab.VectorLen(o)))
    return sorted(ranges)


def structure_offsets(data: bytes) -> np.ndarray:
    """Byte offsets (int64) of ``data`` outside :func:`payload_ranges` and past the 8-byte header."""
    mask = np.ones(len(data), dtype=bool)
    mask[:8] = False  # root offset + "TFL3": damage there is the blunt kinds' job
    for start, end in payload_ranges(data):
        mask[start:end] = False
    return np.flatnonzero(mask)


def _pack(model) -> bytes:

    b = flatbuffers.Builder(0)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _unpack(data: bytes):

    return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)


_HUGE = (2**31 - 1, 2**30, 2**24, 65536, 32000, 0, -1, -7)


def _truncate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    # Half the cuts near the start (header, root table), half anywhere.
    n = int(rng.integers(0, min(64, len(data)))) if rng.random() < 0.3 else int(rng.integers(0, len(data)))
    return data[:n], f"cut to {n} of {len(data)} bytes"


def _byte_flip(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    out = bytearray(data)
    k = int(rng.integers(1, 17))
    where = rng.integers(0, len(out), size=k)
    for i in where:
        out[i] = (out[i] ^ int(rng.integers(1, 256))) & 0xFF
    return bytes(out), f"{k} bytes changed at {','.join(map(str, sorted(where.tolist())[:6]))}"


def _table_flip(data: bytes, rng: np.random.Generator, structure: np.ndarray) -> tuple[bytes, str]:
    out = bytearray(data)
    k = int(rng.integers(1, 9))
    where = rng.choice(structure, size=k, replace=False)
    for i in where:
        out[i] = (out[i] ^ int(rng.integers(1, 256))) & 0xFF
    return bytes(out), f"{k} table bytes changed at {','.join(map(str, sorted(where.tolist())[:6]))}"


def _oversized_dim(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    m = _unpack(data)
    sg = m.subgraphs[0]
    # Inputs and outputs most of the time: their shape drives allocation directly.
    pool = list(sg.inputs) + list(sg.outputs) if rng.random() < 0.5 else list(range(len(sg.tensors)))
    ti = int(rng.choice(pool))
    t = sg.tensors[ti]
    shape = np.array(t.shape if t.shape is not None else [1], dtype=np.int64)
    if shape.size == 0:
        shape = np.array([1], dtype=np.int64)
    d = int(rng.integers(0, shape.size))
    value = int(rng.choice(_HUGE))
    shape[d] = value
    t.shape = shape.astype(np.int32)
    if t.shapeSignature is not None and len(t.shapeSignature) == shape.size:
        t.shapeSignature = t.shape.copy()
    return _pack(m), f"tensor {ti} dim {d} = {value}"


def _swapped_index(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    m = _unpack(data)
    sg = m.subgraphs[0]
    n = len(sg.tensors)
    choice = rng.random()
    if choice < 0.25:  # subgraph input/output swapped with a random tensor
        which = "inputs" if rng.random() < 0.5 else "outputs"
        arr = np.array(getattr(sg, which), dtype=np.int32)
        new = int(rng.integers(-2, n + 3))
        old = int(arr[0])
        arr[0] = new
        setattr(sg, which, arr)
        return _pack(m), f"subgraph {which}[0] {old} -> {new}"
    op_i = int(rng.integers(0, len(sg.operators)))
    op = sg.operators[op_i]
    if choice < 0.5:  # two operators' inputs swapped
        op_j = int(rng.integers(0, len(sg.operators)))
        other = sg.operators[op_j]
        op.inputs, other.inputs = other.inputs, op.inputs
        return _pack(m), f"inputs of operators {op_i} and {op_j} swapped"
    field = "inputs" if choice < 0.8 else "outputs"
    arr = np.array(getattr(op, field), dtype=np.int32)
    if arr.size == 0:
        return _pack(m), f"operator {op_i} has no {field}; unchanged"
    k = int(rng.integers(0, arr.size))
    old = int(arr[k])
    new = int(rng.choice([int(rng.integers(0, n)), n + int(rng.integers(0, 50)), -2, 2**31 - 1]))
    arr[k] = new
    setattr(op, field, arr)
    return _pack(m), f"operator {op_i} {field}[{k}] {old} -> {new}"


def _field_value(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    m = _unpack(data)
    sg = m.subgraphs[0]
    choice = rng.random()
    if choice < 0.4:
        ti = int(rng.integers(0, len(sg.tensors)))
        new = int(rng.integers(0, 20))
        old, sg.tensors[ti].type = sg.tensors[ti].type, new
        return _pack(m), f"tensor {ti} type {old} -> {new}"
    if choice < 0.7:
        ti = int(rng.integers(0, len(sg.tensors)))
        new = int(rng.choice([0, int(rng.integers(0, len(m.buffers))), len(m.buffers) + 3]))
        old, sg.tensors[ti].buffer = sg.tensors[ti].buffer, new
        return _pack(m), f"tensor {ti} buffer {old} -> {new}"
    op_i = int(rng.integers(0, len(sg.operators)))
    new = int(rng.choice([int(rng.integers(0, len(m.operatorCodes))), len(m.operatorCodes) + 1]))
    old, sg.operators[op_i].opcodeIndex = sg.operators[op_i].opcodeIndex, new
    return _pack(m), f"operator {op_i} opcode index {old} -> {new}"


def make_mutant(sources: dict[str, bytes], number: int, seed: int = 0) -> Mutant:
    """Mutant ``number`` of the campaign ``seed``: the kinds and sources take turns, the details are random."""
    rng = np.random.default_rng([seed, number])
    names = sorted(sources)
    kind = KINDS[number % len(KINDS)]
    source = names[(number // len(KINDS)) % len(names)]
    data = sources[source]
    if kind == "truncate":
        out, detail = _truncate(data, rng)
    elif kind == "byte_flip":
        out, detail = _byte_flip(data, rng)
    elif kind == "table_flip":
        out, detail = _table_flip(data, rng, structure_offsets(data))
    elif kind == "oversized_dim":
        out, detail = _oversized_dim(data, rng)
    elif kind == "swapped_index":
        out, detail = _swapped_index(data, rng)
    else:
        out, detail = _field_value(data, rng)
    return Mutant(number, source, kind, detail, out)
