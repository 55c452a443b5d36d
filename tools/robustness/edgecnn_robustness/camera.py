"""Faulty cameras against the real ``edgecnn classify`` and ``edgecnn steer`` processes, and signals.

Each case starts the real command on a :class:`~edgecnn_robustness.fakecam.FakeCamera` URL, reads its JSON lines
as they arrive (stamped with the arrival time), switches the camera's behaviour on cue and measures:

- classify: recovery after the camera fails once and after a stall; a clean error (exit 2, one line) within the
  reconnect timeout when the camera disappears; SIGTERM and SIGINT during a stall stop it with the summary, exit 0;
- steer: for every stall and frozen-image episode, the time from the camera failing to the first neutral ``stale``
  command (must be <= deadline + 50 ms); after SIGTERM a final neutral ``stopped`` command, summary, exit 0; when the
  camera disappears for good, a final neutral and a clean exit 2.

:func:`network_checks` proves nothing listens on a public interface by default.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import edgecnn
from edgecnn.contract import Contract
from edgecnn.runtime.metadata import embed_contract
from edgecnn.runtime.pose import parse_pose_spec
from edgecnn.runtime.sinks import parse_udp
from edgecnn.tfimport import import_tensorflow
from edgecnn_robustness.childenv import child_env
from edgecnn_robustness.fakecam import FakeCamera

Log = Callable[[str], None]
SLACK_S = 0.05  # the allowance beyond the deadline


# Ctrl-C as in a terminal: a shell that starts a command in the background (`make test &`, `sh -c '... &'`) starts
# it with SIGINT ignored, every child inherits that, and Python then installs no KeyboardInterrupt handler: SIGINT
# is silently dropped and the command runs on until its camera times out (exit 2 after ~10 s, the flaky failure of
# issue 16). The command under test gets SIGINT at its default, as a user's terminal gives it.
_DEFAULT_SIGINT = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                   "sys.argv[0] = 'edgecnn'; runpy.run_module('edgecnn', run_name='__main__', alter_sys=True)")


class LiveProcess:
    """``python -m edgecnn ARGS`` with stdout and stderr read line by line, each stamped with ``time.time()`` on
    arrival; SIGINT reaches it as a Ctrl-C from a terminal would, whatever the caller's own disposition is."""

    def __init__(self, args: list[str]) -> None:
        env = child_env(TF_CPP_MIN_LOG_LEVEL="3")
        self.proc = subprocess.Popen([sys.executable, "-c", _DEFAULT_SIGINT, *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     text=True, env=env)
        self.lines: list[tuple[float, str]] = []
        self.err_stamped: list[tuple[float, str]] = []
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self.err_stamped), daemon=True)]
        for r in self._readers:
            r.start()

    @staticmethod
    def _read(stream, into: list[tuple[float, str]]) -> None:
        for line in stream:
            into.append((time.time(), line.rstrip("\n")))

    @property
    def err_lines(self) -> list[str]:
        return [ln for _, ln in list(self.err_stamped)]

    def records(self) -> list[tuple[float, dict]]:
        out = []
        for t, ln in list(self.lines):
            try:
                out.append((t, json.loads(ln)))
            except ValueError:
                out.append((t, {"not_json": ln}))
        return out

    def wait_lines(self, n: int, timeout: float = 30.0, after: float = 0.0) -> bool:
        """True once ``n`` lines arrived after ``after`` (epoch); False on timeout or exit."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if sum(1 for t, _ in list(self.lines) if t >= after) >= n:
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.01)
        return False

    def wait_stderr(self, pattern: str, timeout: float = 30.0, after: float = 0.0) -> float | None:
        """``time.time()`` of the first stderr line matching ``pattern`` (regex) that arrived after ``after``;
        None on timeout or exit. Waiting for what the command says, not for a fixed time, keeps a case's timing
        independent of how loaded the machine is."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            hit = next((t for t, ln in list(self.err_stamped) if t >= after and rx.search(ln)), None)
            if hit is not None:
                return hit
            if self.proc.poll() is not None:
                return None
            time.sleep(0.01)
        return None

    def finish(self, sig: int | None, timeout: float = 20.0) -> tuple[int, float]:
        """Send ``sig`` (if still running) and wait; ``(exit code, seconds from signal to exit)``."""
        t0 = time.monotonic()
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        took = time.monotonic() - t0
        for r in self._readers:  # the pipes are drained once the readers see end of file
            r.join(timeout=5.0)
        return rc, took

    @property
    def stderr(self) -> str:
        return "\n".join(self.err_lines)


def _case(name: str, value: str, requirement: str = "", ok: bool | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "value": value, "requirement": requirement, "ok": ok, **extra}


def _clean_exit(rc: int, err: str) -> bool:
    return rc >= 0 and "Traceback" not in err


# classify's words for "the camera stalled and I noticed": its stall detection fired (after 2 s without a frame)
STALL_NOTICED = r"no frame for [0-9.]+ s, reconnecting"


def classify_cases(model: str | Path, log: Log = lambda m: None, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Drop-and-recover, stall-and-recover, SIGTERM/SIGINT during a stall, and a camera that disappears.

    Every step waits for what classify prints (frames, its "no frame for ... reconnecting" line, its error line),
    bounded by ``timeout`` seconds, never for a fixed time: the cases measure the same thing on an idle and on a
    loaded machine.
    """
    cases = []
    with FakeCamera() as cam:
        p = LiveProcess(["classify", "--model", model, "--source", cam.url, "--json", "--top-k", "1", "--trust-model"])
        started = p.wait_lines(10, timeout=timeout)
        t_drop = cam.set("drop")
        recovered = p.wait_lines(10, timeout=timeout, after=t_drop)
        first = next((t for t, _ in p.lines if t >= t_drop), None)
        cases.append(_case("classify: camera fails once, then recovers",
                           f"frames again after {first - t_drop:.2f} s" if recovered and first else "did not recover",
                           "recovers", bool(started and recovered)))
        t_stall = cam.set("stall")
        # the stall lasts until classify has noticed it (the reader is abandoned and the camera reopened)
        noticed = p.wait_stderr(STALL_NOTICED, timeout=timeout, after=t_stall)
        t_resume = cam.set("stream")
        recovered = p.wait_lines(10, timeout=timeout, after=t_resume)
        first = next((t for t, _ in p.lines if t >= t_resume), None)
        cases.append(_case("classify: stall until noticed, then the camera streams again",
                           f"frames again {first - t_resume:.2f} s after it resumed" if recovered and first else
                           "did not recover", "recovers", bool(noticed and recovered),
                           stall_s=round(t_resume - t_stall, 2)))
        t_stall = cam.set("stall")
        noticed = p.wait_stderr(STALL_NOTICED, timeout=timeout, after=t_stall)
        rc, took = p.finish(signal.SIGTERM, timeout=timeout)
        summary = any("frame" in ln for ln in p.err_lines)
        cases.append(_case("classify: SIGTERM during a stall", f"exit {rc} after {took:.2f} s, summary printed"
                           if summary else f"exit {rc}, no summary", "exit 0 + summary",
                           bool(noticed) and rc == 0 and summary and _clean_exit(rc, p.stderr)))
    log("classify: SIGINT during a stall; camera that disappears")
    with FakeCamera() as cam:
        p = LiveProcess(["classify", "--model", model, "--source", cam.url, "--json", "--trust-model"])
        p.wait_lines(5, timeout=timeout)
        t_stall = cam.set("stall")
        noticed = p.wait_stderr(STALL_NOTICED, timeout=timeout, after=t_stall)
        rc, took = p.finish(signal.SIGINT, timeout=timeout)
        summary = any("frame" in ln for ln in p.err_lines)
        cases.append(_case("classify: SIGINT (Ctrl-C) during a stall", f"exit {rc} after {took:.2f} s",
                           "exit 0 (or 130) + summary",
                           bool(noticed) and rc in (0, 130) and summary and _clean_exit(rc, p.stderr)))
    with FakeCamera() as cam:
        p = LiveProcess(["classify", "--model", model, "--source", cam.url, "--json", "--trust-model",
                         "--reconnect-timeout", "3"])
        p.wait_lines(5, timeout=timeout)
        t_gone = cam.set("gone")
        rc, _ = p.finish(None, timeout=timeout)
        # timed to the error line (what the user sees), not to the process exit, which also includes the
        # interpreter's shutdown: that part is not what "within the reconnect timeout" promises
        said = next(((t, ln) for t, ln in list(p.err_stamped) if t >= t_gone and ln.startswith("Error:")), None)
        took = said[0] - t_gone if said else float("inf")
        err = said[1] if said else ""
        cases.append(_case("classify: camera disappears (--reconnect-timeout 3)",
                           f"exit {rc}, error after {took:.1f} s: {err[:70]}", "clean error within 3 s + 2 s",
                           rc == 2 and bool(err) and took <= 5.0 and _clean_exit(rc, p.stderr)))
    return cases


def steer_model(path: str | Path) -> Path:
    """A tiny steering .tflite (contract inside) whose output is a constant 0.6 (host side: needs TensorFlow)."""
    import keras  # lazy: keras

    tf = import_tensorflow()
    inp = keras.Input((24, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, padding="same")(inp))
    dense = keras.layers.Dense(1)
    model = keras.Model(inp, dense(x))
    k, _ = dense.get_weights()
    dense.set_weights([np.zeros_like(k), np.array([0.6], np.float32)])
    with contextlib.redirect_stdout(sys.stderr):  # the converter prints "Saved artifact at ..." on stdout
        data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    contract = Contract(task="steer", input_height=24, input_width=32, head="regression")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(embed_contract(data, contract))
    return path


def steer_cases(model: str | Path, episodes: int = 4, deadline_ms: float = 500.0,
                log: Log = lambda m: None) -> list[dict[str, Any]]:
    """Stall and frozen-image episodes against ``edgecnn steer``; the worst camera-failure-to-neutral time."""
    deadline = deadline_ms / 1e3
    cases = []
    with FakeCamera() as cam:
        p = LiveProcess(["steer", "--model", model, "--source", cam.url, "--deadline-ms", deadline_ms,
                         "--max-steering-rate", "0", "--reconnect-timeout", "10", "--trust-model"])
        p.wait_lines(10)
        failures = []
        for i in range(episodes):
            mode = "stall" if i % 2 == 0 else "same"
            failures.append((mode, cam.set(mode)))
            time.sleep(deadline + 0.6)
            cam.set("stream")
            p.wait_lines(5, timeout=10, after=time.time())
        cam.set("drop")
        time.sleep(1.0)
        rc, took = p.finish(signal.SIGTERM)
        recs = p.records()
        delays = []
        for mode, t in failures:
            # The last frame the camera sent before failing: the neutral is due a deadline after it at the latest.
            stale = next((r for _, r in recs if r.get("state") == "stale" and r.get("time", 0) >= t), None)
            delays.append((mode, None if stale is None else stale["time"] - t))
        measured = [d for _, d in delays if d is not None]
        worst = max(measured) if measured else None
        all_found = len(measured) == len(delays)
        cases.append(_case(f"steer: camera stall/frozen image -> neutral ({episodes} episodes)",
                           "worst " + (f"{worst * 1e3:.0f} ms" if worst is not None else "never neutral")
                           + " (" + ", ".join(f"{m} {d * 1e3:.0f}" if d is not None else f"{m} -" for m, d in delays) + " ms)",
                           f"<= {deadline_ms:.0f} + 50 ms", all_found and worst is not None and worst <= deadline + SLACK_S,
                           worst_ms=None if worst is None else round(worst * 1e3, 1)))
        m = re.search(r"worst frame-to-neutral (\d+) ms", p.stderr)
        if m:
            cases.append(_case("steer: its own worst frame-to-neutral (summary)", f"{m.group(1)} ms",
                               f"<= {deadline_ms:.0f} + 50 ms", int(m.group(1)) <= deadline_ms + 50))
        last = recs[-1][1] if recs else {}
        final_neutral = last.get("state") == "stopped" and last.get("steering") == 0 and last.get("throttle") == 0
        cases.append(_case("steer: SIGTERM -> final neutral 'stopped', summary, exit 0",
                           f"exit {rc} after {took:.2f} s, last command {last.get('state')}",
                           "exit 0 + neutral", rc == 0 and final_neutral and _clean_exit(rc, p.stderr)))
    with FakeCamera() as cam:
        p = LiveProcess(["steer", "--model", model, "--source", cam.url, "--deadline-ms", deadline_ms,
                         "--reconnect-timeout", "2", "--trust-model"])
        p.wait_lines(5)
        time.sleep(0.5)
        p.proc.send_signal(signal.SIGINT)
        rc, took = p.finish(None)
        recs = p.records()
        last = recs[-1][1] if recs else {}
        cases.append(_case("steer: SIGINT -> final neutral, exit 0", f"exit {rc}, last command {last.get('state')}",
                           "exit 0 + neutral", rc in (0, 130) and last.get("state") == "stopped"
                           and _clean_exit(rc, p.stderr)))
    with FakeCamera() as cam:
        p = LiveProcess(["steer", "--model", model, "--source", cam.url, "--deadline-ms", deadline_ms,
                         "--reconnect-timeout", "2", "--trust-model"])
        p.wait_lines(5)
        t_gone = cam.set("gone")
        rc, _ = p.finish(None, timeout=30)
        recs = p.records()
        last = recs[-1][1] if recs else {}
        stale = next((r for _, r in recs if r.get("state") == "stale" and r.get("time", 0) >= t_gone), None)
        err = next((ln for ln in p.err_lines if ln.startswith("Error:")), "")
        cases.append(_case("steer: camera disappears (--reconnect-timeout 2)",
                           f"neutral after {(stale['time'] - t_gone) * 1e3:.0f} ms, exit {rc}, last {last.get('state')}"
                           if stale else f"exit {rc}, no neutral", "neutral in time, final neutral, exit 2",
                           stale is not None and stale["time"] - t_gone <= deadline + SLACK_S and rc == 2
                           and last.get("state") == "stopped" and bool(err) and _clean_exit(rc, p.stderr)))
    return cases


def camera_cases(work: str | Path, model: str | Path, steer: bool = True, log: Log = lambda m: None) -> dict[str, Any]:
    """All camera cases (classify with ``model``; steer with a constant steering model built here)."""
    cases = classify_cases(model, log)
    worst = None
    if steer:
        log("steer: stalls, frozen images, signals")
        s_model = steer_model(Path(work) / "steer_const.tflite")
        s_cases = steer_cases(s_model, log=log)
        cases += s_cases
        worst = next((c.get("worst_ms") for c in s_cases if "worst_ms" in c), None)
    return {"cases": cases, "worst_stall_to_neutral_ms": worst}


# The modules that receive on a socket on purpose, each with the function that turns a user's address into the
# host it binds: the pose sources (`steer --pose udp://PORT`) only. The live page (aiohttp, `--serve`) is checked
# by its own tests (loopback default, a token for anything else).
RECEIVERS = ("edgecnn/runtime/pose.py",)


def network_checks() -> list[dict[str, Any]]:
    """Nothing in edgecnn listens on a socket except the pose receivers, and those bind 127.0.0.1 unless the
    user names a host; the UDP steering sink defaults to 127.0.0.1."""

    # The fake camera (this tool, not edgecnn) binds 127.0.0.1 on purpose: checked below.
    root = Path(edgecnn.__file__).resolve().parent
    listeners = []
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8", errors="replace")
        rel = str(path.relative_to(root.parent))
        if re.search(r"\.(bind|listen)\(|HTTPServer|socketserver", text) and rel not in RECEIVERS:
            listeners.append(rel)
    host, _ = parse_udp("udp://:5005")
    pose_hosts = {parse_pose_spec(spec)[1]["host"] for spec in ("udp://:5006", "nmea+udp://5007", "udp://5008")}
    cam = FakeCamera()
    cam_host = cam.url.split("//")[1].split(":")[0]
    cam.close()
    return [
        _case("modules that bind or listen on a socket (besides the pose receivers)", ", ".join(listeners) or "none",
              "none", not listeners),
        _case("UDP steering sink default host (udp://:5005)", host, "127.0.0.1", host == "127.0.0.1"),
        _case("pose receivers' default host (udp://:5006, nmea+udp://5007, udp://5008)", ", ".join(sorted(pose_hosts)),
              "127.0.0.1", pose_hosts == {"127.0.0.1"}),
        _case("robustness fake camera binds", cam_host, "127.0.0.1", cam_host == "127.0.0.1"),
    ]
