"""Where the live page binds and who may use it; pure functions, no sockets.

The rule: the default bind is ``127.0.0.1`` (only this machine). Any other host (``0.0.0.0``, a LAN address, even
``127.0.0.2``) needs a token: a random secret printed at start, required on every request (``?token=...`` in the
URL, or an ``X-Edgecnn-Token`` header), so nobody else on the network can watch the camera or drive the car.
Only ``127.0.0.1``, ``localhost`` and ``::1`` count as the default loopback host.

Example::

    spec = parse_serve("0.0.0.0:8000")      # ServeSpec(host="0.0.0.0", port=8000, token="k3J...")
    token_matches(request_token, spec.token)
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from edgecnn.errors import OptionError

DEFAULT_HOST = "127.0.0.1"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_HEADER = "X-Edgecnn-Token"


@dataclass(frozen=True)
class ServeSpec:
    """Where to serve.

    Attributes:
        host: the address to bind (``127.0.0.1`` by default).
        port: TCP port, 0 = any free port (the URL printed at start says which).
        token: the secret every request must carry, or None (loopback bind only).
    """

    host: str
    port: int
    token: str | None = None

    def url(self, port: int | None = None) -> str:
        """The page's address, with the token when there is one."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):
            host = "<this-device's-address>"
        tail = f"/?token={self.token}" if self.token else "/"
        return f"http://{host}:{self.port if port is None else port}{tail}"


def needs_token(host: str) -> bool:
    """True unless ``host`` is the default loopback host (``127.0.0.1``, ``localhost``, ``::1``)."""
    return host.strip().lower() not in LOOPBACK_HOSTS


def new_token() -> str:
    """A fresh random token (22 URL-safe characters, 128 bits)."""
    return secrets.token_urlsafe(16)


def token_matches(given: str | None, expected: str | None) -> bool:
    """True when no token is expected, or ``given`` equals it (constant-time comparison)."""
    if expected is None:
        return True
    return given is not None and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def parse_serve(text: str, token: str | None = None) -> ServeSpec:
    """``--serve [HOST:]PORT`` -> :class:`ServeSpec`; a non-loopback host gets ``token`` or a new one.

    Accepted: ``8000``, ``:8000``, ``127.0.0.1:8000``, ``0.0.0.0:8000``, ``[::1]:8000``. Raises OptionError with the
    expected form otherwise.
    """
    s = str(text).strip()
    if s.startswith("["):  # [IPv6]:PORT
        host, sep, port_s = s[1:].partition("]:")
        if not sep:
            host, port_s = "", ""
    elif ":" in s:
        host, _, port_s = s.rpartition(":")
    else:
        host, port_s = "", s
    host = host or DEFAULT_HOST
    try:
        port = int(port_s)
    except ValueError:
        port = -1
    if not 0 <= port < 65536:
        raise OptionError(f"bad --serve {text!r}; expected [HOST:]PORT, e.g. 8000 or 0.0.0.0:8000 (port 0..65535)")
    if needs_token(host):
        return ServeSpec(host, port, token or new_token())
    return ServeSpec(host, port, token)
