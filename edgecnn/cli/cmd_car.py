"""``edgecnn car``: make and check the car configuration (channels, PWM frequency, end points, trim, limits)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("car")
def cli() -> None:
    """The car configuration that the pca9685:// and serial:// sinks of `edgecnn steer` read.

    \b
    edgecnn car calibrate --sink pca9685://1/0x40 --out car.toml     step by step, on the car
    edgecnn car check car.toml                                      validate and show the pulses
    edgecnn steer --model m.tflite --source 0 --sink "pca9685://1/0x40?config=car.toml"
    """


@cli.command("calibrate")
@click.option("--sink", "board", required=True,
              help="The board: pca9685://BUS/ADDRESS (Donkey Car: pca9685://1/0x40), serial:///dev/ttyUSB0?baud=115200 "
                   "(the Arduino sketch in examples/arduino_steer), or pca9685+emu://1/0x40?dump=FILE (an emulator, "
                   "for tests).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Configuration file to write (.toml or .json).")
@click.option("--start", "start_from", default=None, type=click.Path(dir_okay=False),
              help="Start from this configuration (default: OUT if it exists, else the defaults).")
@click.option("--frequency", default=None, type=click.FloatRange(24, 1526),
              help="PWM frequency, Hz (PCA9685; default 60, or the start file's).")
def calibrate_cmd(board, out, start_from, frequency) -> None:
    """Find the pulses of your car interactively, like donkeycar's `calibrate`.

    Each step outputs a pulse; type other pulse widths (microseconds) to try them on the car, Enter to keep the
    last one, q to quit without writing. Steps: channels, straight ahead, full left, full right, ESC neutral,
    full forward, full reverse, throttle limits. Put the car on a stand first. On any exit the last straight-ahead
    and stop pulses are output.
    """
    from edgecnn.runtime.car_config import (  # lazy: cli
        CalibrationAborted,
        CarConfig,
        calibrate,
        load_car_config,
        save_car_config,
    )
    from edgecnn.runtime.sinks import open_pulse_output  # lazy: cli

    start_path = start_from or (out if Path(out).is_file() else None)
    car = load_car_config(start_path) if start_path else CarConfig()
    if frequency is not None:
        car = car.replace(frequency_hz=frequency)

    def warn(msg: str) -> None:
        click.echo(msg, err=True)

    def ask(prompt: str) -> str:
        try:
            return input(prompt)
        except EOFError:
            return "q"

    def open_output(steer_ch: int, thr_ch: int, freq: float):
        return open_pulse_output(board, steer_ch, thr_ch, freq, car.oscillator_hz, warn=warn)

    try:
        found = calibrate(ask, click.echo, open_output, car)
    except CalibrationAborted:
        click.echo("calibration stopped; nothing written", err=True)
        raise SystemExit(1) from None
    save_car_config(found, out)
    click.echo(f"\nwrote {out}:\n{found.to_toml()}")
    click.echo(f"steer with: edgecnn steer --model MODEL --source 0 --sink \"{board.split('?')[0]}?config={out}\"")


@cli.command("check")
@click.argument("config", type=click.Path(dir_okay=False))
def check_cmd(config) -> None:
    """Validate CONFIG and show the pulse (microseconds) for steering -1, 0, +1 and throttle 0 and the limits."""
    from edgecnn.runtime.car_config import load_car_config  # lazy: cli

    car = load_car_config(config)
    s = ", ".join(f"{v:+g} -> {car.steering_us(v):.0f} us" for v in (-1, -0.5, 0, 0.5, 1))
    t = ", ".join(f"{v:+g} -> {car.throttle_us(v):.0f} us" for v in (-1, 0, 1))
    click.echo(f"{config}: valid; {car.frequency_hz:g} Hz\nsteering (channel {car.steering.channel}, positive = right): "
               f"{s}\nthrottle (channel {car.throttle.channel}, limits -{car.throttle.max_reverse:g}.."
               f"+{car.throttle.max_forward:g}): {t}")
