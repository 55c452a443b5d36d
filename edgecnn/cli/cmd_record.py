"""``edgecnn record``: record training data on the device (no TensorFlow).

``record drive OUT`` writes a Donkey Car tub v2 (``OUT/tub_N``, a new one per recording) while a human drives from
the live page (joystick, keyboard arrows) or a gamepad; ``record images OUT --classes a,b`` saves labelled
snapshots into ``OUT/<class>/``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

_SOURCE_HELP = "Camera index (0), /dev/videoN, rtsp/http URL, picamera2, video file, image, folder or glob."
_SERVE_HELP = ("Serve the live page on [HOST:]PORT (default host 127.0.0.1; any other host prints a token that "
               "every request needs); PORT 0 = any free port.")


@click.group("record")
def cli() -> None:
    """Record training data from the device's camera: a drive tub or labelled images.

    \b
    Examples:
      edgecnn record drive data/track --source 0 --serve 0.0.0.0:8000 --sink udp://127.0.0.1:5005
      edgecnn record drive data/track --source picamera2 --gamepad /dev/input/event0 --duration 300
      edgecnn record images data/pets --source 0 --classes cat,dog,empty --serve 0.0.0.0:8000
    """


def _check_out(out: str) -> None:
    """OutputError (one line) unless the folder ``out`` exists or can be created, and is writable."""
    from edgecnn.errors import OutputError  # lazy: cli

    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out}: {exc.strerror or exc}; choose a folder you can write to") from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to {out}: permission denied; choose a folder you can write to")


def _predictor(model, threads, trust_model, task):
    """A Predictor for ``model`` (checked in a sandboxed child first unless ``trust_model``), or None."""
    if model is None:
        return None
    from edgecnn.errors import ModelError  # lazy: cli
    from edgecnn.runtime.predictor import Predictor  # lazy: cli
    from edgecnn.runtime.sandbox import check_model  # lazy: cli

    if not trust_model:
        check_model(model, threads=threads)
    predictor = Predictor(model, threads=threads)
    if predictor.contract.task != task:
        raise ModelError(f"{model} is a {predictor.contract.task!r} model; record {'drive' if task == 'steer' else 'images'} "
                         f"shows a {task!r} model beside the camera")
    return predictor


@cli.command("drive")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--source", "-s", "source", required=True, help=_SOURCE_HELP)
@click.option("--duration", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Stop cleanly after this many seconds (default: until Ctrl-C).")
@click.option("--serve", default=None, metavar="[HOST:]PORT", help=_SERVE_HELP)
@click.option("--rate", default=20.0, show_default=True, type=click.FloatRange(min=0.5, max=200),
              help="Ticks per second: one command and (while recording) one record each.")
@click.option("--sink", "sinks", multiple=True, default=(),
              help="Where the human's commands go as the car's commands: stdout or udp://HOST:PORT; repeat for "
                   "several (default: none, the car is not driven).")
@click.option("--deadline-ms", default=500.0, show_default=True, type=click.FloatRange(min=50, max=60000),
              help="A neutral 'stale' command goes out when the page (or gamepad) sent nothing for this long.")
@click.option("--record-when", default="throttle", show_default=True, type=click.Choice(["throttle", "always"]),
              help="throttle: record only while the throttle is non-zero; always: every tick.")
@click.option("--drop-seconds", default=5.0, show_default=True, type=click.FloatRange(min=0.1, max=600),
              help="What the page's 'drop last seconds' button (key d) marks deleted.")
@click.option("--max-throttle", default=1.0, show_default=True, type=click.FloatRange(min=0.01, max=1.0),
              help="Scale the human's throttle (0.3 for a first drive).")
@click.option("--size", default=None, metavar="WxH", help="Store frames at this size (e.g. 160x120); default as captured.")
@click.option("--model", "-m", default=None, type=click.Path(dir_okay=False),
              help="A steering .tflite whose prediction the page shows beside the human's (it does not drive).")
@click.option("--gamepad", default=None, metavar="/dev/input/eventN",
              help="Drive with a Linux gamepad (needs the evdev extra).")
@click.option("--reconnect-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Cameras/streams: give up (tub kept, exit 2) after this many seconds without a frame.")
@click.option("--stall-timeout", default=2.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Cameras/streams: reopen the device after this many seconds without a new frame.")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="CPU threads for the model.")
@click.option("--trust-model", is_flag=True, help="Skip the sandboxed check of --model.")
def drive(out, source, duration, serve, rate, sinks, deadline_ms, record_when, drop_seconds, max_throttle, size,
          model, gamepad, reconnect_timeout, stall_timeout, threads, trust_model) -> None:
    """Record a Donkey Car tub v2 in OUT/tub_N while a human drives.

    \b
    Each record: cam/image_array (a JPEG), user/angle [-1, 1] (positive = right), user/throttle [-1, 1],
    user/mode ("user"), _timestamp_ms, _index. `edgecnn train OUT --task steer` and donkeycar read it.
    Records are appended and flushed one by one: a crash or a pulled cable loses at most the last second.
    The human's commands also go to every --sink; when the page stops sending (tab hidden, WiFi lost) a
    neutral 'stale' command goes out within --deadline-ms, and a final neutral 'stopped' on every exit.
    """
    from edgecnn.data.tub_writer import TubWriter, next_tub_path  # lazy: cli
    from edgecnn.errors import EdgecnnError  # lazy: cli
    from edgecnn.runtime.failsafe import Command  # lazy: cli
    from edgecnn.runtime.live.policy import parse_serve  # lazy: cli
    from edgecnn.runtime.live.server import LiveView  # lazy: cli
    from edgecnn.runtime.record.drive import (  # lazy: cli
        DriveConfig,
        DriveSession,
        record_drive,
    )
    from edgecnn.runtime.sinks import open_sink, send_to_all  # lazy: cli
    from edgecnn.runtime.sources import open_source  # lazy: cli
    from edgecnn.runtime.steer import (  # lazy: cli
        Stopped,
        run_interruptibly,
        stop_on_signals,
    )
    from edgecnn.sizes import parse_size  # lazy: cli

    def warn(msg: str) -> None:
        click.echo(msg, err=True)

    spec = parse_serve(serve) if serve else None
    config = DriveConfig(rate_hz=rate, deadline_s=deadline_ms / 1000.0, record_when=record_when,
                         drop_seconds=drop_seconds, max_throttle=max_throttle,
                         size=parse_size(size, "--size") if size else None, duration_s=duration)
    _check_out(out)
    if spec is None and gamepad is None and record_when == "throttle":
        warn("no --serve page and no --gamepad: nobody can drive, so nothing will be recorded "
             "(use --serve PORT, --gamepad, or --record-when always)")
    session = DriveSession()
    opened, view, pad = [], None, None
    sent_stop = False

    def send(cmd: Command) -> None:
        nonlocal sent_stop
        sent_stop = sent_stop or cmd.state == "stopped"
        send_to_all(opened, cmd)

    result = None
    try:
        for spec_s in sinks:
            opened.append(open_sink(spec_s, warn=warn))
        with stop_on_signals() as stop:
            predictor = _predictor(model, threads, trust_model, "steer")
            if spec is not None:
                view = LiveView.start(spec, kind="drive", title=str(out), handlers=session.handlers,
                                      info={"drop_seconds": drop_seconds, "rate_hz": rate}, announce=warn)
            if gamepad is not None:
                from edgecnn.runtime.record.gamepad import Gamepad  # lazy: cli

                pad = Gamepad(gamepad, session.control, on_drop=session.drop, on_pause=session.toggle_pause,
                              warn=warn)
            try:
                src = run_interruptibly(lambda: open_source(source, give_up_s=reconnect_timeout,
                                                            stall_s=stall_timeout, warn=warn), stop, "camera")
            except Stopped:
                src = None
            if src is not None:
                try:
                    tub = TubWriter.create(next_tub_path(Path(out)))
                except EdgecnnError:
                    src.close()
                    raise
                warn(f"recording to {tub.path} at {rate:g} Hz"
                     + (f" for {duration:g} s" if duration else " (Ctrl-C stops)"))
                result = record_drive(src, tub, session, config, send=send, view=view, stop=stop,
                                      predictor=predictor)
    except KeyboardInterrupt:
        pass
    finally:
        if not sent_stop and opened:
            send(Command(time.time(), None, 0.0, 0.0, None, "stopped"))
        if pad is not None:
            pad.close()
        if view is not None:
            view.close()
        for s in opened:
            s.close()
    if result is not None:
        click.echo(result.format(), err=True)


@cli.command("images")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--source", "-s", "source", required=True, help=_SOURCE_HELP)
@click.option("--classes", required=True, help="Class names, comma-separated: one sub-folder and one button each.")
@click.option("--serve", default="127.0.0.1:8000", show_default=True, metavar="[HOST:]PORT", help=_SERVE_HELP)
@click.option("--duration", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Stop cleanly after this many seconds (default: until Ctrl-C).")
@click.option("--burst-rate", default=5.0, show_default=True, type=click.FloatRange(min=0.1, max=60),
              help="Snapshots per second while a class button (or its number key) is held.")
@click.option("--size", default=None, metavar="WxH", help="Store images at this size; default as captured.")
@click.option("--model", "-m", default=None, type=click.Path(dir_okay=False),
              help="A classifier .tflite whose top class the page shows on the live image.")
@click.option("--reconnect-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Cameras/streams: give up after this many seconds without a frame.")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="CPU threads for the model.")
@click.option("--trust-model", is_flag=True, help="Skip the sandboxed check of --model.")
def images(out, source, classes, serve, duration, burst_rate, size, model, reconnect_timeout, threads,
           trust_model) -> None:
    """Save labelled snapshots from the camera into OUT/<class>/ (the layout `edgecnn train` reads).

    On the page: tap a class button (or press its number key) for one snapshot, hold it for a burst at
    --burst-rate; the counts per class are shown live (and printed here).
    """
    from edgecnn.runtime.live.policy import parse_serve  # lazy: cli
    from edgecnn.runtime.live.server import LiveView  # lazy: cli
    from edgecnn.runtime.record.images import (  # lazy: cli
        ImagesConfig,
        ImageSession,
        parse_classes,
        record_images,
    )
    from edgecnn.runtime.sources import open_source  # lazy: cli
    from edgecnn.runtime.steer import (  # lazy: cli
        Stopped,
        run_interruptibly,
        stop_on_signals,
    )
    from edgecnn.sizes import parse_size  # lazy: cli

    def warn(msg: str) -> None:
        click.echo(msg, err=True)

    names = parse_classes(classes)
    spec = parse_serve(serve)
    config = ImagesConfig(burst_hz=burst_rate, size=parse_size(size, "--size") if size else None,
                          duration_s=duration)
    _check_out(out)
    session = ImageSession(names)

    def saved(label: str, counts: dict[str, int]) -> None:
        click.echo(f"saved {label}: " + "  ".join(f"{k} {v}" for k, v in counts.items()), err=True)

    view = None
    result = None
    try:
        with stop_on_signals() as stop:
            predictor = _predictor(model, threads, trust_model, "classify")
            view = LiveView.start(spec, kind="images", title=str(out), handlers=session.handlers,
                                  info={"classes": names}, announce=warn)
            try:
                src = run_interruptibly(lambda: open_source(source, give_up_s=reconnect_timeout, warn=warn),
                                        stop, "camera")
            except Stopped:
                src = None
            if src is not None:
                result = record_images(src, Path(out), session, config, view=view, stop=stop, predictor=predictor,
                                       on_saved=saved)
    except KeyboardInterrupt:
        pass
    finally:
        if view is not None:
            view.close()
    if result is not None:
        click.echo(result.format(), err=True)
