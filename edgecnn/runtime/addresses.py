"""Network addresses as users type them in ``--sink udp://...`` and ``--pose udp://...``."""

from __future__ import annotations


def split_host_port(rest: str) -> tuple[str, str]:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT`` or ``PORT`` -> ``(host, port text)``; host ``""`` when absent.
    The caller checks the port and says what is wrong in its own words."""
    if rest.startswith("["):  # IPv6 literal: [::1]:5005
        host, _, port_s = rest[1:].partition("]:")
    elif ":" in rest:
        host, _, port_s = rest.rpartition(":")
    else:
        host, port_s = "", rest
    return host, port_s
