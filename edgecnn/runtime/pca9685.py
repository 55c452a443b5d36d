"""The PCA9685 16-channel PWM board (the one on a Donkey Car) over I2C, and an emulator of its registers for tests.

:class:`PCA9685` drives the chip through any object with smbus2's ``SMBus`` methods (``write_byte_data``,
``read_byte_data``, ``write_i2c_block_data``, ``close``): :func:`open_i2c_bus` opens a real one with smbus2.
:class:`EmulatedPCA9685` is that same interface in front of an emulated chip, implementing the registers as the
NXP datasheet (PCA9685 rev. 4, section 7.3) defines them, so tests check the exact tick counts a real chip would
receive, without hardware.

Registers used (datasheet table 4):

- ``MODE1`` (0x00): bit 7 RESTART, bit 5 AI (register auto-increment), bit 4 SLEEP (oscillator off), bit 0 ALLCALL;
  power-on value 0x11 (asleep).
- ``MODE2`` (0x01): bit 2 OUTDRV (totem-pole outputs, what servos want); power-on value 0x04.
- ``LEDn_ON_L/H, LEDn_OFF_L/H`` (0x06 + 4n .. 0x09 + 4n): 12-bit counts within the 4096-tick period at which the
  output turns on and off; bit 4 of ``_H`` is "full on"/"full off" (power-on: full off).
- ``PRESCALE`` (0xFE): ``round(oscillator / (4096 * frequency)) - 1`` in 3..255; the chip ignores writes to it
  unless SLEEP is set.

A pulse of ``us`` microseconds is ``round(us * oscillator / (1e6 * (prescale + 1)))`` ticks: computed from the
prescale actually written (60 Hz asks for 101.7 - 1 and gets 101, i.e. 61.3 Hz), not from the nominal frequency.

Example::

    chip = PCA9685(open_i2c_bus(1), address=0x40, frequency_hz=60)
    chip.set_pulse_us(1, 1500)          # channel 1: a 1.5 ms pulse
"""

from __future__ import annotations

import copy
import errno
import json
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

from edgecnn.errors import OutputError

MODE1, MODE2, PRESCALE = 0x00, 0x01, 0xFE
LED0_ON_L = 0x06
ALL_LED_ON_L = 0xFA
RESTART, AI, SLEEP, ALLCALL = 0x80, 0x20, 0x10, 0x01
OUTDRV = 0x04
FULL = 0x10  # bit 4 of LEDn_ON_H / LEDn_OFF_H
TICKS = 4096
NOMINAL_OSCILLATOR_HZ = 25_000_000.0
DEFAULT_ADDRESS = 0x40


class SMBusLike(Protocol):
    """The part of smbus2's ``SMBus`` this driver uses."""

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...
    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...
    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None: ...
    def close(self) -> None: ...


def prescale_for(frequency_hz: float, oscillator_hz: float = NOMINAL_OSCILLATOR_HZ) -> int:
    """The PRESCALE register value for ``frequency_hz`` (datasheet equation 1), clamped to the chip's 3..255."""
    return max(3, min(255, round(oscillator_hz / (TICKS * frequency_hz)) - 1))


def ticks_for(pulse_us: float, prescale: int, oscillator_hz: float = NOMINAL_OSCILLATOR_HZ) -> int:
    """Pulse width in microseconds -> LEDn_OFF count (0..4095) at ``prescale`` (one tick is (prescale + 1) clock
    cycles)."""
    return max(0, min(TICKS - 1, round(pulse_us * oscillator_hz / (1e6 * (prescale + 1)))))


def open_i2c_bus(bus: int) -> SMBusLike:
    """smbus2's ``SMBus(bus)``; OutputError (one line) when the bus device does not exist or cannot be opened."""
    try:
        import smbus2  # lazy: optional
    except ImportError:
        raise OutputError("the pca9685 sink needs smbus2: pip install 'edgecnn[car]' (or pip install smbus2)") from None
    try:
        return smbus2.SMBus(bus)
    except FileNotFoundError:
        raise OutputError(f"no I2C bus {bus}: /dev/i2c-{bus} does not exist; enable I2C (Raspberry Pi: sudo "
                          "raspi-config, Interface Options, I2C) or give the right bus in pca9685://BUS/ADDRESS") from None
    except PermissionError:
        raise OutputError(f"no permission to open /dev/i2c-{bus}; add your user to the 'i2c' group") from None
    except OSError as exc:
        raise OutputError(f"cannot open I2C bus {bus}: {exc.strerror or exc}") from None


class PCA9685:
    """A PCA9685 at ``address`` on ``bus``, set to ``frequency_hz`` with totem-pole outputs and auto-increment.

    Raises OutputError when no chip answers at the address (the kernel's EREMOTEIO/ENXIO/EIO on the first write).
    """

    def __init__(self, bus: SMBusLike, address: int = DEFAULT_ADDRESS, frequency_hz: float = 60.0,
                 oscillator_hz: float = NOMINAL_OSCILLATOR_HZ, sleep: Callable[[float], None] = time.sleep) -> None:
        self.bus, self.address, self.oscillator_hz = bus, address, oscillator_hz
        self.prescale = prescale_for(frequency_hz, oscillator_hz)
        try:
            bus.write_byte_data(address, MODE2, OUTDRV)
            # PRESCALE is writable only while the oscillator sleeps (datasheet 7.3.5).
            bus.write_byte_data(address, MODE1, AI | ALLCALL | SLEEP)
            bus.write_byte_data(address, PRESCALE, self.prescale)
            bus.write_byte_data(address, MODE1, AI | ALLCALL)
            sleep(0.0005)  # the oscillator needs 500 us to start before RESTART (datasheet 7.3.1.1)
            bus.write_byte_data(address, MODE1, AI | ALLCALL | RESTART)
        except OSError as exc:
            if exc.errno in (errno.EREMOTEIO, errno.ENXIO, errno.EIO):
                raise OutputError(f"no PCA9685 answers at I2C address {address:#04x}; check the wiring and the "
                                  "address (i2cdetect -y BUS lists what is there)") from None
            raise OutputError(f"PCA9685 at {address:#04x}: {exc.strerror or exc}") from None

    @property
    def frequency_hz(self) -> float:
        """The output frequency the written prescale gives."""
        return self.oscillator_hz / (TICKS * (self.prescale + 1))

    def ticks(self, pulse_us: float) -> int:
        return ticks_for(pulse_us, self.prescale, self.oscillator_hz)

    def set_ticks(self, channel: int, off: int) -> None:
        """Channel on at count 0, off at ``off`` (one I2C block write of LEDn_ON_L..LEDn_OFF_H)."""
        if not 0 <= channel < 16:
            raise ValueError(f"PCA9685 channel must be 0..15, got: {channel}")
        self.bus.write_i2c_block_data(self.address, LED0_ON_L + 4 * channel, [0, 0, off & 0xFF, (off >> 8) & 0x0F])

    def set_pulse_us(self, channel: int, pulse_us: float) -> int:
        """Output a ``pulse_us`` microsecond pulse on ``channel``; returns the tick count written."""
        off = self.ticks(pulse_us)
        self.set_ticks(channel, off)
        return off

    def close(self) -> None:
        self.bus.close()


class EmulatedPCA9685:
    """An emulated PCA9685 behind smbus2's ``SMBus`` methods: a register file that behaves as the datasheet says.

    Writes to another address fail as the kernel does when nothing answers (OSError EREMOTEIO). Every register
    write is recorded in :attr:`writes` as ``(register, value)`` and, when ``dump`` names a file, appended to it at
    once as a JSON line ``{"t": epoch_s, "reg": r, "value": v}`` (so a killed process leaves a complete record).

    For tests and demos only: ``--sink pca9685+emu://BUS/ADDRESS?config=car.toml&dump=regs.jsonl`` uses it.
    """

    def __init__(self, address: int = DEFAULT_ADDRESS, oscillator_hz: float = NOMINAL_OSCILLATOR_HZ,
                 dump: str | os.PathLike | None = None) -> None:
        self.address, self.oscillator_hz = address, oscillator_hz
        self.regs = bytearray(256)
        self.regs[MODE1], self.regs[MODE2], self.regs[PRESCALE] = SLEEP | ALLCALL, OUTDRV, 0x1E
        for ch in range(16):
            self.regs[LED0_ON_L + 4 * ch + 3] = FULL  # power-on: every output full off
        self.writes: list[tuple[int, int]] = []
        self._dump = open(dump, "a", buffering=1, encoding="utf-8") if dump else None  # noqa: SIM115
        self.closed = False

    # --- smbus2's interface ---
    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: Any = None) -> None:
        self._check(i2c_addr)
        self._write(register, value)

    def read_byte_data(self, i2c_addr: int, register: int, force: Any = None) -> int:
        self._check(i2c_addr)
        return self.regs[register & 0xFF]

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int], force: Any = None) -> None:
        self._check(i2c_addr)
        reg = register
        for value in data:
            self._write(reg, value)
            if self.regs[MODE1] & AI:  # without auto-increment every byte lands in the same register
                reg = (reg + 1) & 0xFF

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int, force: Any = None) -> list[int]:
        self._check(i2c_addr)
        step = 1 if self.regs[MODE1] & AI else 0
        return [self.regs[(register + i * step) & 0xFF] for i in range(length)]

    def close(self) -> None:
        self.closed = True
        if self._dump is not None:
            self._dump.close()
            self._dump = None

    # --- what the outputs do ---
    @property
    def sleeping(self) -> bool:
        return bool(self.regs[MODE1] & SLEEP)

    @property
    def prescale(self) -> int:
        return self.regs[PRESCALE]

    def off_ticks(self, channel: int) -> int | None:
        """How many ticks the output is high per period (on at LEDn_ON, off at LEDn_OFF); None when the output is
        held low (full off, or the oscillator asleep)."""
        base = LED0_ON_L + 4 * channel
        on_l, on_h, off_l, off_h = self.regs[base: base + 4]
        if self.sleeping or off_h & FULL:
            return None
        if on_h & FULL:
            return TICKS
        return (((off_h & 0x0F) << 8 | off_l) - ((on_h & 0x0F) << 8 | on_l)) & (TICKS - 1)

    def pulse_us(self, channel: int) -> float | None:
        """The pulse width the channel outputs, microseconds (None: no pulse)."""
        ticks = self.off_ticks(channel)
        return None if ticks is None else ticks * (self.prescale + 1) * 1e6 / self.oscillator_hz

    def _check(self, i2c_addr: int) -> None:
        if self.closed:
            raise OSError(errno.EBADF, "I2C bus is closed")
        if i2c_addr != self.address:
            raise OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))

    def _write(self, register: int, value: int) -> None:
        register, value = register & 0xFF, value & 0xFF
        self.writes.append((register, value))
        if self._dump is not None:
            self._dump.write(json.dumps({"t": round(time.time(), 6), "reg": register, "value": value}) + "\n")
        if register == PRESCALE and not self.sleeping:
            return  # datasheet 7.3.5: writes to PRESCALE are blocked while SLEEP is 0
        if register == MODE1:
            value &= ~RESTART & 0xFF  # writing RESTART restarts the PWM and clears the bit
        if ALL_LED_ON_L <= register <= ALL_LED_ON_L + 3:
            for ch in range(16):
                self.regs[LED0_ON_L + 4 * ch + register - ALL_LED_ON_L] = value
        self.regs[register] = value


def replay_dump(path: str | os.PathLike, address: int = DEFAULT_ADDRESS,
                oscillator_hz: float = NOMINAL_OSCILLATOR_HZ) -> list[tuple[float, int, EmulatedPCA9685]]:
    """Re-apply a dump file's writes to a fresh emulated chip; returns ``(time, register, chip)`` snapshots after
    each LED block completed (its ``LEDn_OFF_H`` written) and after each mode/prescale write, in order (the chips
    are copies)."""
    chip = EmulatedPCA9685(address, oscillator_hz)
    states: list[tuple[float, int, EmulatedPCA9685]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            w = json.loads(line)
            reg = w["reg"]
            chip.write_byte_data(address, reg, w["value"])
            if LED0_ON_L <= reg < ALL_LED_ON_L + 4 and (reg - LED0_ON_L) % 4 != 3:
                continue
            states.append((w["t"], reg, copy.deepcopy(chip)))
    return states
