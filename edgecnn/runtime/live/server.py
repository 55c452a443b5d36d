"""The live page's web server (aiohttp on its own thread): what ``--serve [HOST:]PORT`` starts.

Routes (every one needs ``?token=...`` or an ``X-Edgecnn-Token`` header when the bind is not loopback; see
:mod:`edgecnn.runtime.live.policy`):

- ``GET /``: the page (package data ``page/index.html`` + ``live.js`` + ``live.css``); it works on a phone;
- ``GET /stream.mjpg``: the live camera as MJPEG (``multipart/x-mixed-replace``) for any viewer (VLC, ffplay,
  OpenCV, an ``<img>``). Only new frames, always the newest: the next frame is written only when the previous one
  has left this process and the kernel's send queue (a small, fixed socket buffer), so a slow link or a slow
  reader gets fewer frames, never a backlog; each part carries ``X-Frame-Seq`` and ``X-Frame-Time`` (capture
  time, epoch seconds);
- ``GET /frame.jpg?after=SEQ``: the newest frame newer than SEQ as one JPEG (waits up to 2 s for one; 204 when
  none came). The page pulls its image this way, one request after the previous image is shown: its pace is the
  link's pace and each image is the newest at the time it was asked for;
- ``GET /status.json``: ``{"kind", "title", "frame", "frame_time", "frame_age_ms", "fps", "clients", "overlay"}``;
- ``POST /api/NAME`` with a JSON body: calls the handler registered under NAME (``control``, ``drop``, ...) on the
  server thread and answers its JSON. A POST must be ``application/json`` and, when the browser sends an
  ``Origin``, come from this page (a foreign web page cannot drive the car through a visitor's browser).

The camera loop only ever calls :meth:`LiveView.publish` (never waits); the server thread does the encoding.

Example (adding the page to a loop is three lines)::

    view = LiveView.start(parse_serve("8000"), kind="classify", title="shapes_int8.tflite")
    try:
        for frame in source:
            result = classify_frame(predictor, frame, 3)
            view.publish(frame.image, {"label": result.top[0][1], "score": result.top[0][2]},
                         timestamp=frame.timestamp, mono=frame.monotonic)
    finally:
        view.close()
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import math
import socket
import struct
import sys
import termios
import threading
import time
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from edgecnn.errors import OutputError
from edgecnn.runtime.live.frames import FrameSlot, Published
from edgecnn.runtime.live.policy import TOKEN_HEADER, ServeSpec, token_matches

BOUNDARY = "edgecnnframe"
SEND_BUFFER = 64 * 1024  # bytes of kernel send buffer per stream client: about one frame in flight, not seconds
PAGE_FILES = {"/": ("index.html", "text/html"), "/live.js": ("live.js", "text/javascript"),
              "/live.css": ("live.css", "text/css")}

Handler = Callable[[dict[str, Any]], dict[str, Any] | None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _unsent_bytes(sock: Any) -> int:
    """Bytes still in the kernel's send queue of ``sock`` (Linux SIOCOUTQ); 0 where it cannot be asked."""
    if sock is None or not hasattr(termios, "TIOCOUTQ"):
        return 0
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError):
        return 0
    return struct.unpack("i", buf)[0]


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats replaced by None (strict JSON for the page)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class LiveView:
    """The live page for one loop; thread-safe, and :meth:`publish` never blocks. Use :meth:`start`.

    Attributes:
        spec: where it serves; ``port`` is the bound port (useful with ``--serve 0``), ``url`` the page's address.
        slot: the :class:`~edgecnn.runtime.live.frames.FrameSlot` frames are published into.
    """

    def __init__(self, spec: ServeSpec, kind: str, title: str = "edgecnn",
                 handlers: Mapping[str, Handler] | None = None, info: dict[str, Any] | None = None,
                 jpeg_quality: int = 80, max_width: int = 640) -> None:
        self.spec = spec
        self.kind = kind
        self.title = title
        self.info = dict(info or {})
        self.handlers = dict(handlers or {})
        self.port = spec.port
        self.slot = FrameSlot(jpeg_quality, max_width, on_publish=self._on_publish)
        self.clients = 0  # connected /stream.mjpg clients
        self.frames_sent = 0
        self._page = {route: (resources.files("edgecnn.runtime.live").joinpath("page", name).read_bytes(), ctype)
                      for route, (name, ctype) in PAGE_FILES.items()}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._waiting = 0
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------------------------------
    @classmethod
    def start(cls, spec: ServeSpec, kind: str, title: str = "edgecnn", handlers: Mapping[str, Handler] | None = None,
              info: dict[str, Any] | None = None, announce: Callable[[str], None] | None = _stderr,
              **kw: Any) -> LiveView:
        """Bind and serve on a daemon thread; returns once the port is bound. ``announce`` receives one line with
        the URL (and the token). Raises OutputError (one line) when the port is in use or the host cannot be
        bound."""
        view = cls(spec, kind, title, handlers, info, **kw)
        ready = threading.Event()
        box: dict[str, BaseException] = {}
        view._thread = threading.Thread(target=view._serve, args=(ready, box), name="live-view", daemon=True)
        view._thread.start()
        ready.wait()
        if "error" in box:
            raise box["error"]
        if announce is not None:
            where = spec.url(view.port)
            extra = ("  (binds beyond this machine: every request needs this token)" if spec.token else "")
            announce(f"live page: {where}{extra}")
        return view

    @property
    def url(self) -> str:
        return self.spec.url(self.port)

    def _serve(self, ready: threading.Event, box: dict[str, BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._bind())
        except BaseException as exc:
            box["error"] = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

    async def _bind(self) -> None:
        self._event = asyncio.Event()
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._page_file)
        app.router.add_get("/live.js", self._page_file)
        app.router.add_get("/live.css", self._page_file)
        app.router.add_get("/stream.mjpg", self._stream)
        app.router.add_get("/frame.jpg", self._frame)
        app.router.add_get("/status.json", self._status)
        app.router.add_post("/api/{name}", self._api)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.spec.host, self.spec.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            where = f"{self.spec.host}:{self.spec.port}"
            if exc.errno == errno.EADDRINUSE:
                raise OutputError(f"cannot serve the live page on {where}: the port is in use; pick another "
                                  "with --serve HOST:PORT (or --serve 0 for any free port)") from None
            raise OutputError(f"cannot serve the live page on {where}: {exc.strerror or exc}") from None
        except socket.gaierror as exc:
            await runner.cleanup()
            raise OutputError(f"cannot serve the live page on {self.spec.host!r}: {exc.strerror}") from None
        self._runner = runner
        for address in runner.addresses:  # the real port when --serve 0
            self.port = int(address[1])
            break

    def close(self) -> None:
        """Stop serving (open streams end); safe to call twice."""
        self._closing = True
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(self._wake)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=3.0)

    def __enter__(self) -> LiveView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the camera loop's side ----------------------------------------------------------------------------------
    def publish(self, image: Any, overlay: dict[str, Any] | None = None, timestamp: float | None = None,
                mono: float | None = None) -> int:
        """Make ``image`` (``uint8 HxWx3`` BGR; not copied, do not modify it afterwards) the newest frame with its
        ``overlay`` (JSON-able values: ``label``, ``score``, ``steering``, ``human``, ``latency_ms``, ...);
        ``timestamp``/``mono``: its capture time (epoch / monotonic seconds; default now). Never blocks."""
        return self.slot.publish(image, overlay, timestamp, mono)

    def _on_publish(self) -> None:
        loop = self._loop
        if self._waiting and loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _wake(self) -> None:
        ev, self._event = self._event, asyncio.Event()
        if ev is not None:
            ev.set()

    async def _newer(self, seq: int, timeout: float) -> Published | None:
        """The newest frame once it is newer than ``seq``; None after ``timeout`` seconds or on close."""
        deadline = time.monotonic() + timeout
        self._waiting += 1
        try:
            while not self._closing:
                ev = self._event
                newest = self.slot.newest()
                if newest is not None and newest.seq > seq:
                    return newest
                left = deadline - time.monotonic()
                if left <= 0 or ev is None:
                    return None
                try:
                    await asyncio.wait_for(ev.wait(), left)
                except asyncio.TimeoutError:
                    return None
            return None
        finally:
            self._waiting -= 1

    # -- HTTP ----------------------------------------------------------------------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        given = request.query.get("token") or request.headers.get(TOKEN_HEADER)
        if not token_matches(given, self.spec.token):
            return web.Response(status=401, text="401 Unauthorized: this live page needs its token; open the URL "
                                                 "edgecnn printed when it started (.../?token=...)\n")
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin and origin != "null" and urlsplit(origin).netloc != request.host:
                return web.Response(status=403, text="403 Forbidden: request from another site\n")
            if request.content_type != "application/json":
                return web.Response(status=415, text="415: send application/json\n")
        return await handler(request)

    async def _page_file(self, request: web.Request) -> web.Response:
        body, ctype = self._page[request.path]
        return web.Response(body=body, content_type=ctype, headers={"Cache-Control": "no-store"})

    def status(self) -> dict[str, Any]:
        """What ``/status.json`` answers."""
        newest = self.slot.newest()
        fps = self.slot.fps()
        return _json_safe({
            "kind": self.kind, "title": self.title, "info": self.info,
            "frame": newest.seq if newest else 0,
            "frame_time": newest.timestamp if newest else None,
            "frame_age_ms": round((time.monotonic() - newest.mono) * 1e3, 1) if newest else None,
            "fps": round(fps, 2) if fps else None,
            "clients": self.clients,
            "overlay": newest.overlay if newest else {},
        })

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status(), headers={"Cache-Control": "no-store"})

    async def _frame(self, request: web.Request) -> web.Response:
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            return web.Response(status=400, text="after must be an integer frame number\n")
        frame = await self._newer(after, timeout=2.0)
        if frame is None:
            return web.Response(status=204 if self.slot.seq else 503, headers={"Cache-Control": "no-store"})
        fps = self.slot.fps()
        if fps:
            # A client that asks rarely would mostly get a frame captured up to one period ago; when the newest is
            # already half a period old, the next one is due soon: wait for it (at most one period).
            period = 1.0 / fps
            if time.monotonic() - frame.mono > 0.5 * period:
                frame = await self._newer(frame.seq, timeout=period) or frame
        jpeg = self.slot.jpeg(frame)
        self.frames_sent += 1
        return web.Response(body=jpeg, content_type="image/jpeg", headers={
            "Cache-Control": "no-store", "X-Frame-Seq": str(frame.seq), "X-Frame-Time": f"{frame.timestamp:.6f}",
            "X-Frame-Age-Ms": f"{(time.monotonic() - frame.mono) * 1e3:.1f}"})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                           "Cache-Control": "no-store", "Pragma": "no-cache"})
        await resp.prepare(request)
        transport = request.transport
        sock = transport.get_extra_info("socket") if transport else None
        if sock is not None:
            try:  # a fixed small buffer: the kernel must not hold seconds of video for a slow link
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            except OSError:
                pass
        self.clients += 1
        last = 0
        try:
            while not self._closing and transport is not None and not transport.is_closing():
                frame = await self._newer(last, timeout=1.0)
                if frame is None:
                    continue
                # One frame in flight: wait until what we wrote has left our buffer and the kernel's send queue;
                # then send the newest frame of that moment (frames published meanwhile are skipped, not queued).
                while (transport.get_write_buffer_size() or _unsent_bytes(sock)) and not transport.is_closing():
                    await asyncio.sleep(0.005)
                frame = self.slot.newest() or frame
                jpeg = self.slot.jpeg(frame)
                head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                        f"X-Frame-Seq: {frame.seq}\r\nX-Frame-Time: {frame.timestamp:.6f}\r\n\r\n").encode("ascii")
                await resp.write(head + jpeg + b"\r\n")
                self.frames_sent += 1
                last = frame.seq
        except ConnectionError:  # the client went away
            pass
        finally:
            self.clients -= 1
        return resp

    async def _api(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        handler = self.handlers.get(name)
        if handler is None:
            return web.json_response({"error": f"unknown action {name!r}"}, status=404)
        try:
            payload = await request.json()
            if not isinstance(payload, dict):
                raise ValueError("the body must be a JSON object")
            answer = handler(payload)
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(_json_safe(answer or {"ok": True}))
