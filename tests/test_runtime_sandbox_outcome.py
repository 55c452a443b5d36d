"""The sandbox's typed outcomes: callers (the robustness campaign, inspect) tell a contained crash from a refusal
by :class:`~edgecnn.runtime.sandbox.SandboxResult`, never by the words of its message."""

from __future__ import annotations

import pytest

from edgecnn.errors import ModelError
from edgecnn.runtime.sandbox import Limits, Outcome, SandboxError, run_child, run_sandboxed

pytestmark = pytest.mark.device

LIMITS = Limits(memory_mb=1024, cpu_s=20, wall_s=20)


def test_a_returning_child_is_ok_and_truthy():
    r = run_child("json:dumps", [[1, 2]], "m.tflite", LIMITS)
    assert r and r.outcome is Outcome.OK and r.value == "[1, 2]" and not r.contained and r.message == ""


def test_the_childs_own_clear_error_is_a_failure_with_its_class_not_a_containment(tmp_path):
    missing = str(tmp_path / "missing.tflite")
    r = run_child("edgecnn.runtime.interpreter:read_model_bytes", [missing], missing, LIMITS)
    assert not r and r.outcome is Outcome.FAILED and r.error == "ModelError" and not r.contained
    with pytest.raises(ModelError) as info:
        run_sandboxed("edgecnn.runtime.interpreter:read_model_bytes", [missing], missing, LIMITS)
    assert not isinstance(info.value, SandboxError) and str(info.value) == r.message


def test_a_crash_is_contained_with_its_signal_and_raised_as_a_typed_model_error():
    r = run_child("os:abort", [], "m.tflite", LIMITS)
    assert r.outcome is Outcome.CRASHED and r.signal == "SIGABRT" and r.contained
    assert r.message.startswith("m.tflite: the model made the interpreter abort")
    with pytest.raises(SandboxError) as info:
        run_sandboxed("os:abort", [], "m.tflite", LIMITS)
    assert isinstance(info.value, ModelError) and info.value.result.outcome is Outcome.CRASHED
    assert str(info.value) == r.message


def test_a_wall_clock_overrun_is_a_timeout():
    r = run_child("time:sleep", [60], "m.tflite", Limits(memory_mb=1024, cpu_s=20, wall_s=1.5))
    assert r.outcome is Outcome.TIMEOUT and r.contained and r.signal is None and "timed out after 2 s" in r.message
