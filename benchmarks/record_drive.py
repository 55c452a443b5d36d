"""Benchmark ``edgecnn record drive``: records written in a timed run, read back by edgecnn, by donkeycar's own
``Tub`` reader and by ``edgecnn train``, and what kill -9 loses (not a test; tests/test_record_cli.py has short,
tolerant versions).

1. ``record drive OUT --source <fake IP camera, 20 FPS> --duration S --rate 20 --serve 127.0.0.1:0`` while a client
   plays the page (``/api/control`` every 100 ms, throttle on for the whole run): records vs ``S * 20``;
2. the tub read by ``edgecnn.data.tub.read_tubs`` and by donkeycar 5.3.0's ``Tub`` in its own venv
   (``.venv-donkey``: ``python3 -m venv .venv-donkey && .venv-donkey/bin/pip install donkeycar==5.3.0 tflite-runtime
   "numpy<2" opencv-python-headless typing_extensions``), and with ``--train`` by ``edgecnn train OUT --task steer
   --epochs 1``;
3. a second recording killed with SIGKILL after ``--kill-after`` seconds: the gap between the kill and the last
   record that reads back.

    .venv/bin/python benchmarks/record_drive.py [--seconds 60] [--train]

Prints a table on stderr and the JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools" / "robustness"))

from edgecnn.data.tub import read_tubs  # noqa: E402
from edgecnn_robustness.fakecam import FakeCamera  # noqa: E402

DONKEY = REPO / ".venv-donkey" / "bin" / "python"
DONKEY_READ = """
import json, sys, io, contextlib
with contextlib.redirect_stdout(io.StringIO()):
    from donkeycar.parts.tub_v2 import Tub
tub = Tub(sys.argv[1], read_only=True)
print(json.dumps({"records": len(list(tub)), "len": len(tub)}))
tub.close()
"""


def start_record(out: Path, url: str, *extra: str) -> tuple[subprocess.Popen, str, list[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "edgecnn", "record", "drive", str(out), "--source", url,
                             "--serve", "127.0.0.1:0", *extra], cwd=REPO, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    base: list[str] = []

    def read() -> None:
        for line in proc.stderr:
            err.append(line)
            m = re.search(r"live page: (http://\S+/)", line)
            if m:
                base.append(m.group(1))

    threading.Thread(target=read, daemon=True).start()
    while not any("recording to" in ln for ln in err):
        if proc.poll() is not None:
            raise SystemExit("record drive failed to start:\n" + "".join(err))
        time.sleep(0.05)
    return proc, base[0], err


def play_page(base: str, stop: threading.Event) -> None:
    while not stop.is_set():
        req = urllib.request.Request(base + "api/control", data=b'{"angle": 0.2, "throttle": 0.3}',
                                     headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=5).read()
        except OSError:  # the recording ended and its server with it
            return
        time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--kill-after", type=float, default=10.0)
    ap.add_argument("--train", action="store_true", help="also train 1 epoch on the tub (TensorFlow)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="record_drive_"))
    result: dict = {"seconds": args.seconds, "rate_hz": 20, "expected": int(args.seconds * 20), "folder": str(root)}
    with FakeCamera(fps=20) as cam:
        out = root / "data"
        proc, base, err = start_record(out, cam.url, "--duration", str(args.seconds))
        stop = threading.Event()
        player = threading.Thread(target=play_page, args=(base, stop), daemon=True)
        player.start()
        proc.wait()
        stop.set()
        result["summary"] = next((ln.strip() for ln in err if "records (" in ln), "")
        data = read_tubs(out)
        tub = Path(data.sources[0])
        records = len((tub / "catalog_0.catalog").read_text().splitlines()) + sum(
            len(p.read_text().splitlines()) for p in tub.glob("catalog_*.catalog") if p.name != "catalog_0.catalog")
        result.update(records=records, edgecnn_reader=len(data.samples),
                      deviation_pct=round(100 * (records - result["expected"]) / result["expected"], 2))
        if DONKEY.exists():
            d = subprocess.run([str(DONKEY), "-c", DONKEY_READ, str(tub)], capture_output=True, text=True)
            result["donkeycar_reader"] = json.loads(d.stdout.strip().splitlines()[-1])["records"] if d.returncode == 0 \
                else f"failed: {d.stderr[-300:]}"
        else:
            result["donkeycar_reader"] = "skipped: no .venv-donkey"
        if args.train:
            t = subprocess.run([sys.executable, "-m", "edgecnn", "train", str(out), "--task", "steer", "--epochs", "1",
                                "--out", str(root / "run")], cwd=REPO, capture_output=True, text=True)
            result["train"] = "ok" if t.returncode == 0 else f"failed: {t.stderr[-300:]}"
        # kill -9 mid-recording
        out2 = root / "killed"
        proc, base, err = start_record(out2, cam.url, "--record-when", "always")
        time.sleep(args.kill_after)
        killed = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data2 = read_tubs(out2)
        lines = (Path(data2.sources[0]) / "catalog_0.catalog").read_text().splitlines()
        good = [json.loads(ln) for ln in lines if ln.endswith("}")]
        result["kill9"] = {"records_read": len(data2.samples), "faults": data2.faults,
                           "lost_s": round(killed - good[-1]["_timestamp_ms"] / 1000, 3)}
    print(f"record drive {args.seconds:g} s at 20 Hz: {result['records']} records (expected {result['expected']}, "
          f"{result['deviation_pct']:+.2f} %); edgecnn reader {result['edgecnn_reader']}, donkeycar reader "
          f"{result['donkeycar_reader']}" + (f", train {result['train']}" if args.train else ""), file=sys.stderr)
    print(f"kill -9 after {args.kill_after:g} s: {result['kill9']['records_read']} records read back, last one "
          f"{result['kill9']['lost_s']} s before the kill, faults {result['kill9']['faults']}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
