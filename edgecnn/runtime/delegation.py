"""Which of a model's nodes the delegate (XNNPACK, Edge TPU) took, and which stayed on the reference CPU kernels.

"Why is int8 not faster?" has a few usual answers that can be read off a loaded interpreter: the delegate took
no node, or left some ops on LiteRT's reference kernels (each hand-over costs a copy and the reference kernels are
slow), or the model has uint8 I/O and per-tensor weights (the legacy quantization, whose uint8 kernels XNNPACK
runs slower than int8 ones on arm, or not at all in older runtimes). :func:`delegate_report` answers from the
interpreter itself, after the delegate was applied:

LiteRT keeps the model's own nodes first (``0 .. n-1``, in the file's order) and appends one ``DELEGATE`` node per
partition the delegate took over (``_get_ops_details()``, the op list ai-edge-litert 2.x and tflite-runtime both
expose). A partition's nodes are the original nodes between that delegate node's inputs and its outputs; every
original node in no partition runs on the CPU kernels.

Example::

    report = delegate_report(make_interpreter("model_int8.tflite", threads=1))
    print(report.format())    # "XNNPACK took 14 of 14 nodes in 1 partition(s) ..."
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Ops whose second input is a weight tensor with one scale per output channel when quantized per channel.
_WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D"}


@dataclass(frozen=True)
class DelegateReport:
    """How the delegate split a model.

    Attributes:
        delegate: the delegate asked for (``"xnnpack"``, ``"none"``, ``"edgetpu"``).
        nodes: the model's own nodes (ops), delegate nodes not counted.
        delegated: how many of them a delegate partition runs.
        partitions: delegate nodes (each hand-over between CPU kernels and a partition costs a copy).
        cpu_ops: op name -> count of the nodes left on the reference CPU kernels.
        io_dtypes: dtypes of the inputs and outputs, e.g. ``("int8", "int8")``.
        per_tensor_weights: weighted ops (conv, fully connected) whose quantized weights have a single scale.
        warnings: one line per problem found (uint8 I/O, per-tensor weights, nothing delegated, ops on the CPU).
    """

    delegate: str
    nodes: int
    delegated: int
    partitions: int
    cpu_ops: dict[str, int] = field(default_factory=dict)
    io_dtypes: tuple[str, ...] = ()
    per_tensor_weights: int = 0
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"delegate": self.delegate, "nodes": self.nodes, "delegated": self.delegated,
                "partitions": self.partitions, "cpu_ops": dict(self.cpu_ops), "io_dtypes": list(self.io_dtypes),
                "per_tensor_weights": self.per_tensor_weights, "warnings": list(self.warnings)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DelegateReport:
        return cls(delegate=str(d.get("delegate", "")), nodes=int(d.get("nodes", 0)),
                   delegated=int(d.get("delegated", 0)), partitions=int(d.get("partitions", 0)),
                   cpu_ops=dict(d.get("cpu_ops") or {}), io_dtypes=tuple(d.get("io_dtypes") or ()),
                   per_tensor_weights=int(d.get("per_tensor_weights", 0)), warnings=tuple(d.get("warnings") or ()))

    def format(self) -> str:
        """Two lines or more: what the delegate took, then each warning."""
        name = {"xnnpack": "XNNPACK", "edgetpu": "Edge TPU"}.get(self.delegate, self.delegate)
        cpu = ", ".join(f"{k} x{v}" for k, v in sorted(self.cpu_ops.items(), key=lambda kv: (-kv[1], kv[0])))
        if self.delegate == "none":
            line = f"delegate: none (asked for): all {self.nodes} nodes on the reference CPU kernels"
        else:
            line = (f"delegate: {name} took {self.delegated} of {self.nodes} nodes in {self.partitions} partition(s)"
                    + (f"; on the reference CPU kernels: {cpu}" if cpu else ""))
        return "\n".join([line, *(f"  warning: {w}" for w in self.warnings)])


def partition_nodes(ops: list[dict[str, Any]]) -> tuple[int, list[set[int]]]:
    """``(number of original nodes, [set of original node indexes per delegate partition])``.

    ``ops`` is ``interpreter._get_ops_details()``: the model's nodes first, then one ``DELEGATE`` node per
    partition. A partition holds the original nodes reached walking back from the delegate node's outputs
    through producers, stopping at the delegate node's inputs (and at constants, which have no producer).
    """
    original = [o for o in ops if o.get("op_name") != "DELEGATE"]
    n = len(original)
    producer: dict[int, int] = {}
    for o in original:
        for t in np.asarray(o.get("outputs", []), dtype=np.int64).tolist():
            producer[int(t)] = int(o["index"])
    by_index = {int(o["index"]): o for o in original}
    partitions = []
    for d in ops:
        if d.get("op_name") != "DELEGATE":
            continue
        stop = {int(t) for t in np.asarray(d.get("inputs", []), dtype=np.int64).tolist()}
        todo = [int(t) for t in np.asarray(d.get("outputs", []), dtype=np.int64).tolist()]
        seen: set[int] = set()
        while todo:
            t = todo.pop()
            node = producer.get(t)
            if t in stop or node is None or node in seen:
                continue
            seen.add(node)
            todo.extend(int(i) for i in np.asarray(by_index[node].get("inputs", []), dtype=np.int64).tolist() if i >= 0)
        partitions.append(seen)
    return n, partitions


def delegate_report(interpreter: Any, delegate: str = "xnnpack") -> DelegateReport:
    """The :class:`DelegateReport` of an allocated interpreter (as :func:`make_interpreter` returns it)."""
    ops = interpreter._get_ops_details()  # experimental in LiteRT, present in ai-edge-litert 2.x and tflite-runtime
    n, partitions = partition_nodes(ops)
    taken = set().union(*partitions) if partitions else set()
    cpu = Counter(o["op_name"] for o in ops if o.get("op_name") != "DELEGATE" and int(o["index"]) not in taken)
    io = tuple(np.dtype(d["dtype"]).name for d in (*interpreter.get_input_details(), *interpreter.get_output_details()))
    per_tensor = 0
    for o in ops:
        inputs = np.asarray(o.get("inputs", []), dtype=np.int64).tolist()
        if o.get("op_name") in _WEIGHTED and len(inputs) >= 2 and inputs[1] >= 0:
            try:
                d = interpreter._get_tensor_details(int(inputs[1]), 0)
            except (ValueError, RuntimeError):  # a tensor without details
                continue
            scales = np.asarray(d.get("quantization_parameters", {}).get("scales", []))
            shape = list(d["shape"])
            # output channels: the last axis of a depthwise kernel (1, h, w, C), the first of the others
            channels = int(shape[-1] if o["op_name"] == "DEPTHWISE_CONV_2D" else shape[0]) if shape else 1
            if np.issubdtype(np.dtype(d["dtype"]), np.integer) and scales.size == 1 and channels > 1:
                per_tensor += 1
    warnings = []
    if "uint8" in io:
        warnings.append("uint8 input/output (legacy quantization): XNNPACK's uint8 kernels are slower than its int8 "
                        "ones on arm (XNNPACK#6653); re-quantize with int8 I/O (edgecnn quantize --io int8)")
    if per_tensor:
        warnings.append(f"{per_tensor} conv/dense layer(s) with per-tensor weight quantization (one scale for all "
                        "channels): less accurate than per-channel, and the uint8 path XNNPACK handles worst")
    if delegate != "none" and n and not taken:
        warnings.append("the delegate took no node: every op runs on the reference CPU kernels (no speed-up)")
    elif delegate != "none" and cpu:
        warnings.append(f"{sum(cpu.values())} node(s) stayed on the reference CPU kernels ({', '.join(sorted(cpu))}), "
                        f"around {len(partitions)} delegate partition(s): each hand-over between them costs a copy")
    return DelegateReport(delegate=delegate, nodes=n, delegated=len(taken), partitions=len(partitions),
                          cpu_ops=dict(cpu), io_dtypes=io, per_tensor_weights=per_tensor, warnings=tuple(warnings))
