"""Where steering commands go: stdout or UDP (one JSON line each), or a car's servo and speed controller.

:func:`open_sink` turns a ``--sink`` string into a :class:`Sink`:

- ``"stdout"``: one JSON line per command on standard output, flushed at once (logs and the summary go to stderr,
  so stdout stays pure JSON lines);
- ``"udp://HOST:PORT"``: one datagram per command to HOST (default ``127.0.0.1``: ``udp://:5005`` or
  ``udp://5005``); a sender only, nothing listens;
- ``"pca9685://BUS/ADDRESS?config=car.toml"``: a PCA9685 PWM board on I2C bus BUS at ADDRESS (Donkey Car's
  ``pca9685://1/0x40``), through smbus2; the car configuration (:mod:`edgecnn.runtime.car_config`, written by
  ``edgecnn car calibrate``) gives channels, frequency, end points, trim and throttle limits;
- ``"serial:///dev/ttyUSB0?baud=115200&config=car.toml[&timeout_ms=500]"``: a microcontroller on a serial port
  speaking the line protocol of :mod:`edgecnn.runtime.serial_sink` (pyserial), whose own watchdog outputs neutral
  ``timeout_ms`` after the last command: the one sink that stays safe when ``steer`` is killed with ``kill -9``;
- ``"pca9685+emu://BUS/ADDRESS?config=car.toml[&dump=regs.jsonl]"``: **an emulator for tests**: the PCA9685's
  registers in memory (:class:`~edgecnn.runtime.pca9685.EmulatedPCA9685`), every register write appended to the
  dump file. Nothing moves.

Every car sink outputs neutral (straight ahead, throttle stopped) when it opens and again when it closes, besides
the neutral commands the loop sends. A PCA9685 keeps its last pulses when the process dies without closing it
(``kill -9``, power loss of the Pi only): it has no watchdog of its own; the serial protocol does.

Sinks never block the loop for long: UDP sends are non-blocking and a lost datagram is simply lost (the receiver
must run its own watchdog, as a motor controller should). Sending fails loudly only when stdout is closed.

Example::

    with open_sink("udp://127.0.0.1:5005") as sink:
        sink.send(command)
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable
from typing import TextIO
from urllib.parse import parse_qs, urlsplit

from edgecnn.errors import OptionError, OutputError
from edgecnn.runtime.addresses import split_host_port
from edgecnn.runtime.car_config import CarConfig, load_car_config
from edgecnn.runtime.failsafe import Command
from edgecnn.runtime.pca9685 import PCA9685, EmulatedPCA9685, SMBusLike, open_i2c_bus
from edgecnn.runtime.serial_sink import (
    CONFIG_REPEAT_S,
    DEFAULT_BAUD,
    DEFAULT_TIMEOUT_MS,
    check_timeout_ms,
    encode_config,
    encode_drive,
    is_write_timeout,
    open_serial_port,
)


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


def send_to_all(sinks: Iterable[Sink], cmd: Command) -> None:
    """Send ``cmd`` to every sink, even when one of them fails (a broken UDP peer must not keep the neutral
    command from the servo board); then raise the first OutputError, if any."""
    error = None
    for sink in sinks:
        try:
            sink.send(cmd)
        except OutputError as exc:
            error = error or exc
    if error:
        raise error


def parse_udp(spec: str) -> tuple[str, int]:
    """``udp://HOST:PORT``, ``udp://:PORT`` or ``udp://PORT`` -> (host, port); host defaults to 127.0.0.1."""
    host, port_s = split_host_port(spec[len("udp://"):].strip("/"))
    try:
        port = int(port_s)
    except ValueError:
        raise OutputError(f"bad UDP sink {spec!r}; expected udp://HOST:PORT, e.g. udp://127.0.0.1:5005") from None
    return host or "127.0.0.1", port


def _car_pulses(car: CarConfig, command: Command) -> tuple[float, float]:
    """(steering, throttle) pulse widths in microseconds for a command; a non-finite value gives neutral."""
    if not (math.isfinite(command.steering) and math.isfinite(command.throttle)):
        return car.neutral_us()
    return car.steering_us(command.steering), car.throttle_us(command.throttle)


class Pca9685Sink(Sink):
    """Each command as two pulses on a PCA9685 (throttle first, then steering); neutral on open and on close.

    ``bus`` is an smbus2 ``SMBus`` (or anything with its methods: the emulator). An I2C write that fails raises
    OutputError: the loop then stops and tries its final neutral.
    """

    def __init__(self, bus: SMBusLike, address: int, car: CarConfig, description: str = "pca9685") -> None:
        self.description, self.car, self.bus = description, car, bus
        try:
            self.chip = PCA9685(bus, address, car.frequency_hz, car.oscillator_hz)
        except BaseException:
            bus.close()
            raise
        self._closed = False
        self._write(*car.neutral_us())

    def _write(self, steer_us: float, throttle_us: float) -> None:
        try:
            self.chip.set_pulse_us(self.car.throttle.channel, throttle_us)
            self.chip.set_pulse_us(self.car.steering.channel, steer_us)
        except OSError as exc:
            raise OutputError(f"{self.description}: I2C write failed ({exc.strerror or exc})") from None

    def send(self, command: Command) -> None:
        self._write(*_car_pulses(self.car, command))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._write(*self.car.neutral_us())
        except OutputError:
            pass
        finally:
            self.chip.close()


class SerialSink(Sink):
    """Each command as a ``D`` line of the serial protocol (:mod:`edgecnn.runtime.serial_sink`) on ``port``, after
    an ``N`` line (neutral pulses, watchdog timeout) sent on open and again every second; a neutral ``D`` line on
    close. Writes never block: a line the driver cannot take at once is dropped and reported once (the
    microcontroller's watchdog covers a link that stopped draining)."""

    def __init__(self, port: object, car: CarConfig, timeout_ms: int = DEFAULT_TIMEOUT_MS,
                 description: str = "serial", warn: Callable[[str], None] = _stderr,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.description, self.car, self.timeout_ms = description, car, timeout_ms
        self._port, self._warn, self._clock = port, warn, clock
        self._warned = False
        self._config_sent: float | None = None
        try:
            check_timeout_ms(timeout_ms)
            self._send_config()
        except BaseException:
            port.close()  # type: ignore[attr-defined]
            raise

    def _write(self, line: bytes) -> None:
        try:
            self._port.write(line)  # type: ignore[attr-defined]
        except OSError as exc:
            if is_write_timeout(exc):  # pyserial's "would block" (write_timeout=0)
                if not self._warned:
                    self._warned = True
                    self._warn(f"{self.description}: the port is not draining; lines are dropped (the "
                               "microcontroller's watchdog outputs neutral)")
                return
            raise OutputError(f"{self.description}: write failed ({exc.strerror or exc}); unplugged?") from None

    def _send_config(self) -> None:
        self._write(encode_config(*self.car.neutral_us(), self.timeout_ms))
        self._config_sent = self._clock()

    def send(self, command: Command) -> None:
        if self._config_sent is None or self._clock() - self._config_sent >= CONFIG_REPEAT_S:
            self._send_config()
        self._write(encode_drive(*_car_pulses(self.car, command)))

    def close(self) -> None:
        port, self._port = self._port, None
        if port is None:
            return
        try:
            # No flush(): tcdrain can wait forever on a port nobody reads; the line is in the kernel's buffer.
            port.write(encode_drive(*self.car.neutral_us()))  # type: ignore[attr-defined]
        except OSError:
            pass
        finally:
            port.close()  # type: ignore[attr-defined]


def _query(spec: str, parts: object, allowed: set[str]) -> dict[str, str]:
    q = parse_qs(parts.query, keep_blank_values=True)  # type: ignore[attr-defined]
    unknown = set(q) - allowed
    if unknown:
        raise OptionError(f"sink {spec!r}: unknown option(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(allowed))}")
    return {k: v[-1] for k, v in q.items()}


def _car(spec: str, query: dict[str, str], example: str) -> CarConfig:
    if not query.get("config"):
        raise OptionError(f"sink {spec!r} needs the car configuration: {example} (write one with "
                          "`edgecnn car calibrate --out car.toml`)")
    return load_car_config(query["config"])


def _int_option(spec: str, name: str, value: str, base: int = 10) -> int:
    try:
        return int(value, base)
    except ValueError:
        raise OptionError(f"sink {spec!r}: {name} must be an integer, got: {value!r}") from None


def open_car_sink(spec: str, warn: Callable[[str], None] = _stderr) -> Sink:
    """A ``pca9685://``, ``pca9685+emu://`` or ``serial://`` sink (see the module docstring)."""
    parts = urlsplit(spec)
    scheme = parts.scheme.lower()
    if scheme in ("pca9685", "pca9685+emu"):
        emulate = scheme == "pca9685+emu"
        query = _query(spec, parts, {"config", "dump"} if emulate else {"config"})
        bus_s, address_s = parts.netloc, parts.path.strip("/") or "0x40"
        if not bus_s.isdigit() or "/" in address_s:
            raise OptionError(f"bad sink {spec!r}; expected pca9685://BUS/ADDRESS?config=car.toml, "
                              "e.g. pca9685://1/0x40?config=car.toml")
        address = _int_option(spec, "the address", address_s, 0)
        if not 0x03 <= address <= 0x77:
            raise OptionError(f"sink {spec!r}: I2C address must be 0x03..0x77, got: {address:#x}")
        car = _car(spec, query, f"pca9685://{bus_s}/{address:#04x}?config=car.toml")
        desc = f"{scheme}://{bus_s}/{address:#04x}"
        if emulate:
            warn(f"{desc}: an EMULATED PCA9685 (for tests): nothing drives a car"
                 + (f"; register writes go to {query['dump']}" if query.get("dump") else ""))
            bus: SMBusLike = EmulatedPCA9685(address, car.oscillator_hz, dump=query.get("dump") or None)
        else:
            bus = open_i2c_bus(int(bus_s))
        return Pca9685Sink(bus, address, car, description=desc)
    if scheme == "serial":
        query = _query(spec, parts, {"config", "baud", "timeout_ms"})
        port = (parts.netloc + parts.path) if parts.netloc else parts.path
        if not port:
            raise OptionError(f"bad sink {spec!r}; expected serial:///dev/ttyUSB0?baud=115200&config=car.toml")
        baud = _int_option(spec, "baud", query.get("baud", str(DEFAULT_BAUD)))
        timeout_ms = check_timeout_ms(_int_option(spec, "timeout_ms", query.get("timeout_ms", str(DEFAULT_TIMEOUT_MS))))
        car = _car(spec, query, f"serial://{port}?baud={baud}&config=car.toml")
        return SerialSink(open_serial_port(port, baud), car, timeout_ms,
                          description=f"serial://{port}?baud={baud}", warn=warn)
    raise OptionError(f"unknown sink {spec!r}")


def open_sink(spec: str, warn: Callable[[str], None] = _stderr) -> Sink:
    """The sink ``spec`` names (see the module docstring); OutputError or OptionError with the expected form
    otherwise. A car sink has output neutral by the time this returns."""
    s = str(spec).strip()
    if s in ("stdout", "-"):
        return StdoutSink()
    if s.lower().startswith("udp://"):
        host, port = parse_udp(s)
        return UdpSink(host, port, warn=warn)
    if s.lower().startswith(("pca9685://", "pca9685+emu://", "serial://")):
        return open_car_sink(s, warn=warn)
    raise OutputError(f"unknown sink {spec!r}; use stdout, udp://HOST:PORT (e.g. udp://127.0.0.1:5005), "
                      "pca9685://BUS/ADDRESS?config=car.toml or serial:///dev/ttyUSB0?baud=115200&config=car.toml")


class PulseOutput:
    """Raw pulses for calibration (no car configuration yet): ``pulse(steer_us, throttle_us)``; see
    :func:`open_pulse_output`."""

    def __init__(self, write: Callable[[float, float], None], close: Callable[[], None], description: str) -> None:
        self._write, self._close, self.description = write, close, description

    def pulse(self, steer_us: float, throttle_us: float) -> None:
        try:
            self._write(steer_us, throttle_us)
        except OSError as exc:
            raise OutputError(f"{self.description}: write failed ({exc.strerror or exc})") from None

    def close(self) -> None:
        self._close()


def open_pulse_output(spec: str, steering_channel: int, throttle_channel: int, frequency_hz: float = 60.0,
                      oscillator_hz: float = 25_000_000.0, warn: Callable[[str], None] = _stderr) -> PulseOutput:
    """Raw pulse output on a ``pca9685://BUS/ADDRESS``, ``pca9685+emu://BUS/ADDRESS[?dump=FILE]`` or
    ``serial://PORT[?baud=N]`` board, for ``edgecnn car calibrate`` (which finds the configuration)."""
    parts = urlsplit(str(spec).strip())
    scheme = parts.scheme.lower()
    if scheme in ("pca9685", "pca9685+emu"):
        emulate = scheme == "pca9685+emu"
        query = _query(spec, parts, {"dump"} if emulate else set())
        bus_s, address_s = parts.netloc, parts.path.strip("/") or "0x40"
        if not bus_s.isdigit():
            raise OptionError(f"bad board {spec!r}; expected pca9685://BUS/ADDRESS, e.g. pca9685://1/0x40")
        address = _int_option(spec, "the address", address_s, 0)
        if emulate:
            warn(f"{scheme}://{bus_s}/{address:#04x}: an EMULATED PCA9685 (for tests): nothing moves")
            bus: SMBusLike = EmulatedPCA9685(address, oscillator_hz, dump=query.get("dump") or None)
        else:
            bus = open_i2c_bus(int(bus_s))
        try:
            chip = PCA9685(bus, address, frequency_hz, oscillator_hz)
        except BaseException:
            bus.close()
            raise

        def write(steer_us: float, throttle_us: float) -> None:
            chip.set_pulse_us(throttle_channel, throttle_us)
            chip.set_pulse_us(steering_channel, steer_us)

        return PulseOutput(write, chip.close, f"{scheme}://{bus_s}/{address:#04x}")
    if scheme == "serial":
        query = _query(spec, parts, {"baud"})
        port_name = (parts.netloc + parts.path) if parts.netloc else parts.path
        port = open_serial_port(port_name, _int_option(spec, "baud", query.get("baud", str(DEFAULT_BAUD))))
        # A long watchdog while a human types; neutral stays the sketch's default until calibration ends.
        port.write(encode_config(1500, 1500, 60000))

        def write_line(steer_us: float, throttle_us: float) -> None:
            port.write(encode_drive(steer_us, throttle_us))

        return PulseOutput(write_line, port.close, f"serial://{port_name}")
    raise OptionError(f"unknown board {spec!r}; use pca9685://BUS/ADDRESS or serial:///dev/ttyUSB0?baud=115200")
