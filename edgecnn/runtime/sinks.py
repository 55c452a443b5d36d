"""Where steering commands go: stdout (one JSON line each) or UDP datagrams (one JSON line each).

:func:`open_sink` turns a ``--sink`` string into a :class:`Sink`:

- ``"stdout"``: one JSON line per command on standard output, flushed at once (logs and the summary go to stderr,
  so stdout stays pure JSON lines);
- ``"udp://HOST:PORT"``: one datagram per command to HOST (default ``127.0.0.1``: ``udp://:5005`` or
  ``udp://5005``); a sender only, nothing listens.

Sinks never block the loop for long: UDP sends are non-blocking and a lost datagram is simply lost (the receiver
must run its own watchdog, as a motor controller should). Sending fails loudly only when stdout is closed.

Example::

    with open_sink("udp://127.0.0.1:5005") as sink:
        sink.send(command)
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from typing import TextIO

from edgecnn.errors import OutputError
from edgecnn.runtime.failsafe import Command


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Sink:
    """Receives every command; :meth:`send` must return quickly."""

    description = "sink"

    def send(self, command: Command) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the socket or file; safe to call twice."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StdoutSink(Sink):
    """One JSON line per command on ``stream`` (default: ``sys.stdout`` at send time), flushed immediately.

    Raises OutputError when the reader went away (``edgecnn steer ... | head -3``); later sends are dropped.
    """

    description = "stdout"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._broken = False

    def send(self, command: Command) -> None:
        if self._broken:
            return
        stream = self._stream or sys.stdout
        try:
            stream.write(command.to_json() + "\n")
            stream.flush()
        except BrokenPipeError:
            self._broken = True
            # Point stdout at /dev/null so Python's final flush does not print another BrokenPipeError.
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
            except (OSError, ValueError, AttributeError):
                pass
            raise OutputError("stdout was closed by its reader; stopping") from None


class UdpSink(Sink):
    """One datagram (a JSON line) per command to ``host:port``; non-blocking, losses are not errors.

    A send error (no route, buffer full) is reported once per kind on ``warn`` and the loop carries on.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 5005, warn: Callable[[str], None] = _stderr) -> None:
        if not 0 < port < 65536:
            raise OutputError(f"UDP port must be in 1..65535, got: {port}")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise OutputError(f"cannot resolve UDP sink host {host!r}: {exc.strerror}") from None
        family, _, _, _, addr = infos[0]
        self.description = f"udp://{host}:{port}"
        self.address = addr
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._warn = warn
        self._warned: set[str] = set()

    def send(self, command: Command) -> None:
        try:
            self._sock.sendto((command.to_json() + "\n").encode("utf-8"), self.address)
        except OSError as exc:  # a steering loop must not die because one datagram could not go out
            kind = type(exc).__name__
            if kind not in self._warned:
                self._warned.add(kind)
                self._warn(f"{self.description}: send failed ({exc}); carrying on")

    def close(self) -> None:
        self._sock.close()


def parse_udp(spec: str) -> tuple[str, int]:
    """``udp://HOST:PORT``, ``udp://:PORT`` or ``udp://PORT`` -> (host, port); host defaults to 127.0.0.1."""
    rest = spec[len("udp://"):].strip("/")
    if rest.startswith("["):  # IPv6 literal: udp://[::1]:5005
        host, _, port_s = rest[1:].partition("]:")
    elif ":" in rest:
        host, _, port_s = rest.rpartition(":")
    else:
        host, port_s = "", rest
    try:
        port = int(port_s)
    except ValueError:
        raise OutputError(f"bad UDP sink {spec!r}; expected udp://HOST:PORT, e.g. udp://127.0.0.1:5005") from None
    return host or "127.0.0.1", port


def open_sink(spec: str, warn: Callable[[str], None] = _stderr) -> Sink:
    """The sink ``spec`` names: ``stdout`` or ``udp://HOST:PORT`` (OutputError with the expected form otherwise)."""
    s = str(spec).strip()
    if s in ("stdout", "-"):
        return StdoutSink()
    if s.lower().startswith("udp://"):
        host, port = parse_udp(s)
        return UdpSink(host, port, warn=warn)
    raise OutputError(f"unknown sink {spec!r}; use stdout or udp://HOST:PORT (e.g. udp://127.0.0.1:5005)")
