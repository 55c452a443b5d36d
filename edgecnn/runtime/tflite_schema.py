"""A small reader of the TFLite flatbuffer schema: only the tables and fields edgecnn reads, over ``flatbuffers``.

The device side reads three things from a .tflite without TensorFlow and without ai-edge-litert: the named
metadata entries (our contract), and for ``inspect`` the tensors, operators and buffers. The legacy
``tflite_runtime`` package ships no schema, so edgecnn carries this reader; it needs only the ``flatbuffers``
package (and numpy). Writing metadata (host side, at export) uses the full generated schema of ai-edge-litert.

The slot numbers and enum names below are those of the TFLite schema (``schema.fbs`` in tensorflow/tensorflow,
``tensorflow/compiler/mlir/lite/schema/schema.fbs``): Copyright The TensorFlow Authors, licensed under the Apache
License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0). A field's slot is ``4 + 2 * its id``; fields
are only ever appended to that schema, so these never move.

Example::

    model = read_model(data)               # data: bytes of a .tflite
    for entry in model.metadata:
        print(entry.name, model.buffers[entry.buffer].size)

Views are lazy (a field is decoded when read); a damaged flatbuffer raises IndexError, struct.error or ValueError
on access, which callers turn into a ModelError.
"""

from __future__ import annotations

import numpy as np
from flatbuffers import encode, packer
from flatbuffers import number_types as nt
from flatbuffers.table import Table

from edgecnn.errors import ModelError

FILE_IDENTIFIER = b"TFL3"
CUSTOM = 32  # BuiltinOperator.CUSTOM

# BuiltinOperator, by code (schema.fbs `enum BuiltinOperator : int32`, codes 0..209 as of LiteRT 2.x). A newer
# code than this table knows is shown as ``op<code>``.
BUILTIN_OPERATORS = (
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE",
    "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP", "L2_NORMALIZATION", "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC", "LSH_PROJECTION", "LSTM", "MAX_POOL_2D", "MUL", "RELU",
    "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RNN", "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH",
    "CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL", "CUSTOM", "EMBEDDING_LOOKUP_SPARSE", "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN",
    "SUB", "DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN",
    "EXP", "TOPK_V2", "SPLIT", "LOG_SOFTMAX", "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU",
    "MAXIMUM", "ARG_MAX", "MINIMUM", "LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL", "SELECT",
    "SLICE", "SIN", "TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL", "NOT_EQUAL", "LOG",
    "SUM", "SQRT", "RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT", "REDUCE_PROD", "REDUCE_MAX", "PACK",
    "LOGICAL_OR", "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT", "UNPACK", "REDUCE_MIN", "FLOOR_DIV", "REDUCE_ANY",
    "SQUARE", "ZEROS_LIKE", "FILL", "FLOOR_MOD", "RANGE", "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU",
    "SQUARED_DIFFERENCE", "MIRROR_PAD", "ABS", "SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2", "ADD_N", "GATHER_ND",
    "COS", "WHERE", "RANK", "ELU", "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE", "MATRIX_SET_DIAG", "ROUND",
    "HARD_SWISH", "IF", "WHILE", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "SCATTER_ND", "SELECT_V2",
    "DENSIFY", "SEGMENT_SUM", "BATCH_MATMUL", "PLACEHOLDER_FOR_GREATER_OP_CODES", "CUMSUM", "CALL_ONCE",
    "BROADCAST_TO", "RFFT2D", "CONV_3D", "IMAG", "REAL", "COMPLEX_ABS", "HASHTABLE", "HASHTABLE_FIND",
    "HASHTABLE_IMPORT", "HASHTABLE_SIZE", "REDUCE_ALL", "CONV_3D_TRANSPOSE", "VAR_HANDLE", "READ_VARIABLE",
    "ASSIGN_VARIABLE", "BROADCAST_ARGS", "RANDOM_STANDARD_NORMAL", "BUCKETIZE", "RANDOM_UNIFORM", "MULTINOMIAL",
    "GELU", "DYNAMIC_UPDATE_SLICE", "RELU_0_TO_1", "UNSORTED_SEGMENT_PROD", "UNSORTED_SEGMENT_MAX",
    "UNSORTED_SEGMENT_SUM", "ATAN2", "UNSORTED_SEGMENT_MIN", "SIGN", "BITCAST", "BITWISE_XOR", "RIGHT_SHIFT",
    "STABLEHLO_LOGISTIC", "STABLEHLO_ADD", "STABLEHLO_DIVIDE", "STABLEHLO_MULTIPLY", "STABLEHLO_MAXIMUM",
    "STABLEHLO_RESHAPE", "STABLEHLO_CLAMP", "STABLEHLO_CONCATENATE", "STABLEHLO_BROADCAST_IN_DIM",
    "STABLEHLO_CONVOLUTION", "STABLEHLO_SLICE", "STABLEHLO_CUSTOM_CALL", "STABLEHLO_REDUCE", "STABLEHLO_ABS",
    "STABLEHLO_AND", "STABLEHLO_COSINE", "STABLEHLO_EXPONENTIAL", "STABLEHLO_FLOOR", "STABLEHLO_LOG",
    "STABLEHLO_MINIMUM", "STABLEHLO_NEGATE", "STABLEHLO_OR", "STABLEHLO_POWER", "STABLEHLO_REMAINDER",
    "STABLEHLO_RSQRT", "STABLEHLO_SELECT", "STABLEHLO_SUBTRACT", "STABLEHLO_TANH", "STABLEHLO_SCATTER",
    "STABLEHLO_COMPARE", "STABLEHLO_CONVERT", "STABLEHLO_DYNAMIC_SLICE", "STABLEHLO_DYNAMIC_UPDATE_SLICE",
    "STABLEHLO_PAD", "STABLEHLO_IOTA", "STABLEHLO_DOT_GENERAL", "STABLEHLO_REDUCE_WINDOW", "STABLEHLO_SORT",
    "STABLEHLO_WHILE", "STABLEHLO_GATHER", "STABLEHLO_TRANSPOSE", "DILATE", "STABLEHLO_RNG_BIT_GENERATOR",
    "REDUCE_WINDOW", "STABLEHLO_COMPOSITE", "STABLEHLO_SHIFT_LEFT", "STABLEHLO_CBRT", "STABLEHLO_CASE"
)
TENSOR_TYPES = (
    "FLOAT32", "FLOAT16", "INT32", "UINT8", "INT64", "STRING", "BOOL", "INT16", "COMPLEX64", "INT8", "FLOAT64",
    "COMPLEX128", "UINT64", "RESOURCE", "VARIANT", "UINT32", "UINT16", "INT4", "BFLOAT16", "INT2", "UINT4",
    "FLOAT8_E4M3FN", "FLOAT8_E5M2"
)


def builtin_operator_name(code: int) -> str:
    """The BuiltinOperator name of ``code`` (``"CONV_2D"``), ``"op<code>"`` when newer than this table."""
    return BUILTIN_OPERATORS[code] if 0 <= code < len(BUILTIN_OPERATORS) else f"op{code}"


def tensor_type_name(code: int) -> str:
    """The numpy-style dtype name of a TensorType code (``"float32"``, ``"int8"``), ``"type<code>"`` if unknown."""
    return TENSOR_TYPES[code].lower() if 0 <= code < len(TENSOR_TYPES) else f"type{code}"


def check_identifier(data: bytes, name: str = "model") -> None:
    """ModelError unless ``data`` (bytes of a file) carries the TFLite file identifier ``TFL3`` at bytes 4..8."""
    if len(data) < 8 or bytes(data[4:8]) != FILE_IDENTIFIER:
        raise ModelError(f"{name} is not a TFLite model (no TFL3 identifier); check the path or re-export it")


class _View:
    """One table of the flatbuffer. ``slot`` is the field's vtable offset (4 + 2 * field id)."""

    __slots__ = ("_tab",)

    def __init__(self, buf: bytes, pos: int):
        self._tab = Table(buf, pos)

    def _scalar(self, slot: int, flags: type, default: float = 0):
        o = self._tab.Offset(slot)
        return self._tab.Get(flags, o + self._tab.Pos) if o else default

    def _string(self, slot: int) -> str:
        o = self._tab.Offset(slot)
        return self._tab.String(o + self._tab.Pos).decode("utf-8", "replace") if o else ""

    def _numbers(self, slot: int, dtype: str) -> np.ndarray:
        """A vector of scalars (``dtype``: little-endian numpy type, flatbuffers' byte order) as a read-only array
        viewing the file (empty when absent)."""
        o = self._tab.Offset(slot)
        if not o:
            return np.zeros(0, dtype)
        n = self._tab.VectorLen(o)
        start = self._tab.Vector(o)
        if start + n * np.dtype(dtype).itemsize > len(self._tab.Bytes):
            raise ValueError("vector runs past the end of the buffer")
        return np.frombuffer(self._tab.Bytes, dtype, n, start)

    def _length(self, slot: int) -> int:
        o = self._tab.Offset(slot)
        return self._tab.VectorLen(o) if o else 0

    def _tables(self, slot: int, cls: type) -> tuple:
        o = self._tab.Offset(slot)
        if not o:
            return ()
        n = self._tab.VectorLen(o)
        start = self._tab.Vector(o)
        if start + 4 * n > len(self._tab.Bytes):  # a damaged length must not make a huge loop
            raise ValueError("table vector runs past the end of the buffer")
        return tuple(cls(self._tab.Bytes, self._tab.Indirect(start + 4 * i)) for i in range(n))

    def _table(self, slot: int, cls: type):
        o = self._tab.Offset(slot)
        return cls(self._tab.Bytes, self._tab.Indirect(o + self._tab.Pos)) if o else None


class QuantizationParameters(_View):
    """Affine quantization ``real = scale * (q - zero_point)``, per tensor or per channel."""

    @property
    def scale(self) -> np.ndarray:  # float32 (C,)
        return self._numbers(8, "<f4")

    @property
    def zero_point(self) -> np.ndarray:  # int64 (C,)
        return self._numbers(10, "<i8")


class Tensor(_View):
    @property
    def shape(self) -> np.ndarray:  # int32, batch first
        return self._numbers(4, "<i4")

    @property
    def type(self) -> int:  # TensorType code; see tensor_type_name
        return self._scalar(6, nt.Int8Flags)

    @property
    def buffer(self) -> int:  # index into Model.buffers; 0 = no data (an activation)
        return self._scalar(8, nt.Uint32Flags)

    @property
    def name(self) -> str:
        return self._string(10)

    @property
    def quantization(self) -> QuantizationParameters | None:
        return self._table(12, QuantizationParameters)

    @property
    def shape_signature(self) -> np.ndarray:  # int32, -1 for a dynamic dimension; empty when static
        return self._numbers(18, "<i4")


class OperatorCode(_View):
    @property
    def deprecated_builtin_code(self) -> int:  # int8: codes < 127 (old files only fill this one)
        return self._scalar(4, nt.Int8Flags)

    @property
    def custom_code(self) -> str:
        return self._string(6)

    @property
    def builtin_code(self) -> int:
        return self._scalar(10, nt.Int32Flags)

    @property
    def code(self) -> int:
        """The operator's BuiltinOperator code, whichever of the two fields the writer filled."""
        return max(int(self.builtin_code), int(self.deprecated_builtin_code))


class Operator(_View):
    @property
    def opcode_index(self) -> int:  # index into Model.operator_codes
        return self._scalar(4, nt.Uint32Flags)

    @property
    def inputs(self) -> np.ndarray:  # int32 tensor indexes; -1 = optional input left out
        return self._numbers(6, "<i4")

    @property
    def outputs(self) -> np.ndarray:
        return self._numbers(8, "<i4")


class SubGraph(_View):
    @property
    def tensors(self) -> tuple[Tensor, ...]:
        return self._tables(4, Tensor)

    @property
    def inputs(self) -> np.ndarray:  # int32 tensor indexes
        return self._numbers(6, "<i4")

    @property
    def outputs(self) -> np.ndarray:
        return self._numbers(8, "<i4")

    @property
    def operators(self) -> tuple[Operator, ...]:
        return self._tables(10, Operator)


class Buffer(_View):
    @property
    def data_length(self) -> int:
        return self._length(4)

    @property
    def offset(self) -> int:  # > 1: the data lives outside the flatbuffer, at this file offset (models > 2 GB)
        return self._scalar(6, nt.Uint64Flags)

    @property
    def size(self) -> int:
        return self._scalar(8, nt.Uint64Flags)

    def has_data(self) -> bool:
        """True when the buffer holds bytes (a constant tensor), inside or after the flatbuffer."""
        return self.data_length > 0 or self.offset > 1

    def data(self, file: bytes) -> bytes:
        """The buffer's bytes; ``file`` is the whole .tflite (needed for data stored after the flatbuffer)."""
        if self.data_length:
            return self._numbers(4, "u1").tobytes()
        if self.offset > 1:
            if self.offset + self.size > len(file):
                raise ValueError("buffer runs past the end of the file")
            return bytes(file[self.offset : self.offset + self.size])
        return b""


class Metadata(_View):
    @property
    def name(self) -> str:
        return self._string(4)

    @property
    def buffer(self) -> int:  # index into Model.buffers
        return self._scalar(6, nt.Uint32Flags)


class Model(_View):
    @property
    def version(self) -> int:
        return self._scalar(4, nt.Uint32Flags)

    @property
    def operator_codes(self) -> tuple[OperatorCode, ...]:
        return self._tables(6, OperatorCode)

    @property
    def subgraphs(self) -> tuple[SubGraph, ...]:
        return self._tables(8, SubGraph)

    @property
    def description(self) -> str:
        return self._string(10)

    @property
    def buffers(self) -> tuple[Buffer, ...]:
        return self._tables(12, Buffer)

    @property
    def metadata(self) -> tuple[Metadata, ...]:
        return self._tables(16, Metadata)


def read_model(data: bytes) -> Model:
    """The root table of .tflite ``data``; ModelError when the TFL3 identifier is missing.

    Nothing is decoded yet: fields are read on access (and may raise on a damaged file, see the module docstring).
    """
    check_identifier(data)
    data = bytes(data)
    root = encode.Get(packer.uoffset, data, 0)
    return Model(data, root)
