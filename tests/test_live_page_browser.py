"""The live page in a real headless Chromium (Debian's ``chromium``, driven through Playwright), on real
``edgecnn record`` processes reading a fake IP camera (MJPEG over HTTP on 127.0.0.1):

- ``record images`` with the shipped shapes classifier (``firmware_models/shapes_compact``): the live image
  updates, the overlay shows the model's label (the one ``/status.json`` reports), a number key saves a snapshot
  into the class folder and the count on the page follows;
- ``record drive``: keyboard arrows reach the tub records, the ``d`` key marks the last seconds deleted.

Screenshots go to the test's tmp folder (and to ``$EDGECNN_SCREENSHOTS`` when set). Needs /usr/bin/chromium
(``make test`` installs it); no TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from conftest import REPO
from test_record_cli import RecordProcess

from edgecnn.data.tub import read_tubs
from edgecnn_robustness.fakecam import FakeCamera

CLASSIFIER = REPO / "firmware_models" / "shapes_compact" / "model_int8.tflite"
LABELS = ("circle", "plus", "square", "triangle", "x")
CHROMIUM = Path(os.environ.get("EDGECNN_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium (make test does it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def keep(path: Path) -> None:
    dest = os.environ.get("EDGECNN_SCREENSHOTS")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(dest) / path.name)


def image_seq(page) -> int:
    return int(page.get_attribute("#live", "data-seq") or 0)


def wait_until(fn, timeout: float = 20.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def pixels(page) -> list[int]:
    """A row of the shown image's pixels, read back through a canvas (same origin, so not tainted)."""
    script = """async () => { const img = document.getElementById('live');
        try { await img.decode(); } catch (e) { return null; }   // the page may be swapping in the next frame
        if (!img.naturalWidth) return null;
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        return Array.from(g.getImageData(0, c.height >> 1, c.width, 1).data.filter((_, i) => i % 4 === 0)); }"""
    return wait_until(lambda: page.evaluate(script), what="a decoded image")


def test_page_in_chromium_images_then_drive(browser, tmp_path):
    with FakeCamera(fps=20) as cam:
        # --- record images with a classifier: live image, label overlay, snapshot by key ---
        out = tmp_path / "shapes"
        rec = RecordProcess("images", out, "--source", cam.url, "--classes", "circle,square", "--model", CLASSIFIER,
                            "--trust-model", "--serve", "127.0.0.1:0")
        try:
            url = rec.url()
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.goto(url)
            first = wait_until(lambda: image_seq(page), what="a first frame")
            a = pixels(page)
            wait_until(lambda: image_seq(page) >= first + 5, what="the image to update")
            assert pixels(page) != a  # the picture itself changed (the fake camera's bar moves)
            page.wait_for_function("/^\\S+ \\d\\.\\d\\d/.test(document.getElementById('label').textContent)",
                                   timeout=20000)
            shown = page.text_content("#label").split()[0]
            assert shown in LABELS
            status = json.loads(page.evaluate("fetch('status.json').then(r => r.text())"))
            assert status["overlay"]["label"] in LABELS and isinstance(status["overlay"]["score"], float)
            page.keyboard.press("2")
            wait_until(lambda: len(list((out / "square").glob("*.jpg"))) == 1, what="a square snapshot")
            page.wait_for_function("document.querySelector('#class-square .count').textContent === '1'",
                                   timeout=20000)
            assert list((out / "circle").glob("*.jpg")) == []
            shot = tmp_path / "live_images.png"
            page.screenshot(path=str(shot), full_page=True)
            keep(shot)
            page.close()
        finally:
            rc, err = rec.finish()
        assert rc == 0 and "Traceback" not in err, err

        # --- record drive: keyboard steering reaches the tub, 'd' drops the last seconds ---
        data = tmp_path / "track"
        rec = RecordProcess("drive", data, "--source", cam.url, "--serve", "127.0.0.1:0", "--drop-seconds", "1.5",
                            "--duration", "60")
        try:
            url = rec.url()
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.goto(url)
            wait_until(lambda: image_seq(page), what="a first frame")
            page.wait_for_selector("#drive:not([hidden])")
            page.keyboard.down("ArrowRight")  # steer first, then throttle: every record has both
            time.sleep(0.3)
            page.keyboard.down("ArrowUp")
            page.wait_for_function("document.getElementById('recstate').textContent.startsWith('RECORDING')",
                                   timeout=20000)
            time.sleep(2.5)
            shot = tmp_path / "live_drive.png"
            page.screenshot(path=str(shot), full_page=True)
            keep(shot)
            page.keyboard.up("ArrowUp")  # the page now sends throttle 0: recording stops
            time.sleep(0.3)
            page.keyboard.up("ArrowRight")
            dropped_at = time.time()
            page.keyboard.press("d")
            manifest = data / "tub_1" / "manifest.json"
            deleted = wait_until(lambda: json.loads(manifest.read_text().splitlines()[4])["deleted_indexes"],
                                 what="records marked deleted")
            page.wait_for_function("/[1-9]\\d* dropped/.test(document.getElementById('recstate').textContent)",
                                   timeout=20000)
            page.close()
        finally:
            rc, err = rec.finish(signal.SIGINT)
        assert rc == 0 and "Traceback" not in err, err
    lines = [json.loads(ln) for ln in (data / "tub_1" / "catalog_0.catalog").read_text().splitlines()]
    assert len(lines) >= 20
    assert {r["user/angle"] for r in lines} == {0.6} and {r["user/throttle"] for r in lines} == {0.3}  # key defaults
    gone = [r for r in lines if r["_index"] in set(deleted)]
    assert gone and all(dropped_at - 1.5 - 0.5 <= r["_timestamp_ms"] / 1000 <= dropped_at + 0.5 for r in gone)
    kept = read_tubs(data).samples
    assert kept and len(kept) == len(lines) - len(gone) and all(s.steering == 0.6 for s in kept)
