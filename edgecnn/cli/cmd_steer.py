"""``edgecnn steer``: drive from a camera with a .tflite steering model, fail-safe (no TensorFlow)."""

from __future__ import annotations

import time

import click

from edgecnn.errors import EdgecnnError, ModelError, OutputError
from edgecnn.sizes import parse_size


@click.command("steer")
@click.option("--model", "-m", "model", required=True, type=click.Path(),
              help="The steering .tflite exported by edgecnn (its contract says how to read it).")
@click.option("--source", "-s", "source", required=True,
              help="Camera index (0), /dev/videoN, rtsp/http/tcp URL, picamera2, video file, image, folder or glob.")
@click.option("--deadline-ms", default=500.0, show_default=True, type=click.FloatRange(min=10, max=60000),
              help="A neutral 'stale' command goes out when no frame younger than this has become a command.")
@click.option("--max-frames", "-n", default=None, type=click.IntRange(min=1),
              help="Stop after N frames turned into commands.")
@click.option("--sink", "sinks", multiple=True, default=("stdout",), show_default=True,
              help="stdout or udp://HOST:PORT (HOST defaults to 127.0.0.1); repeat to send to several.")
@click.option("--throttle", default=0.0, show_default=True, type=click.FloatRange(-1, 1),
              help="Constant throttle for a model without a throttle output (0: do not move).")
@click.option("--max-steering-rate", default=4.0, show_default=True, type=click.FloatRange(min=0),
              help="Steering slew-rate limit, units per second (2 = centre to full lock in 0.5 s); 0 = no limit.")
@click.option("--max-uncertainty", default=0.35, show_default=True, type=click.FloatRange(min=0),
              help="gmm models: steering std above which a command is 'uncertain' (throttle reduced).")
@click.option("--uncertain-throttle", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Throttle factor for 'uncertain' commands.")
@click.option("--every-frame", is_flag=True, help="Video files: process every frame instead of playing in real time.")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="CPU threads for the interpreter.")
@click.option("--delegate", default="xnnpack", show_default=True,
              type=click.Choice(["xnnpack", "none", "edgetpu"]), help="Accelerator (edgetpu needs libedgetpu.so.1).")
@click.option("--reconnect-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Cameras/streams: give up (final neutral, exit 2) after this many seconds without a frame.")
@click.option("--stall-timeout", default=2.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Cameras/streams: reopen the device after this many seconds without a new frame.")
@click.option("--capture-size", default=None, metavar="WxH",
              help="Cameras: open at this size (e.g. 160x120). Default: the size of the model's training frames "
                   "when its contract records it (a tub recorded at 160x120), else the smallest common mode "
                   "covering the model's input.")
@click.option("--allow-frozen", is_flag=True,
              help="Keep steering on identical consecutive frames (a still synthetic scene); by default a camera "
                   "repeating one exact image is treated as stalled.")
@click.option("--trust-model", is_flag=True,
              help="Skip the check that loads the model in a sandboxed child process first (faster start).")
def cli(model, source, deadline_ms, max_frames, sinks, throttle, max_steering_rate, max_uncertainty,
        uncertain_throttle, every_frame, threads, delegate, reconnect_timeout, stall_timeout, capture_size,
        allow_frozen, trust_model) -> None:
    """Steer from a camera, stream or video: one JSON command per line, neutral when anything stalls.

    \b
    Each command: {"time", "frame_time", "steering", "throttle", "uncertainty", "state", "frame"}
      time        when it was sent (epoch seconds)
      frame_time  capture time of the frame it came from (epoch seconds)
      steering    [-1, 1], positive = right; clamped and slew-rate limited
      throttle    the model's, or --throttle (default 0: the car does not move unless told)
      uncertainty steering std of a gmm model, else null
      state       ok | uncertain | stale | stopped  (stale and stopped are neutral: steering 0, throttle 0)

    \b
    Fail-safe: when no frame younger than --deadline-ms has become a command (camera stall, hung model, dead
    source), a neutral 'stale' command goes out within the deadline and again every half deadline; a NaN
    output becomes neutral; on exit (end, Ctrl-C, SIGTERM, error) a final neutral 'stopped' is sent. The
    latency summary goes to stderr; stdout is pure JSON lines.

    \b
    Examples:
      edgecnn steer --model steer_int8.tflite --source 0 --throttle 0.2
      edgecnn steer --model m.tflite --source rtsp://192.168.1.20/cam --sink udp://192.168.1.30:5005
      edgecnn steer --model m.tflite --source clip.mp4 --max-frames 100 > commands.jsonl
    """
    from edgecnn.runtime.failsafe import FailsafeConfig  # lazy: cli
    from edgecnn.runtime.sinks import open_sink  # lazy: cli
    from edgecnn.runtime.steer import stop_on_signals  # lazy: cli

    requested = parse_size(capture_size, "--capture-size", minimum=16) if capture_size else None
    config = FailsafeConfig(
        deadline_s=deadline_ms / 1000.0, max_rate=max_steering_rate or None, throttle=throttle,
        max_uncertainty=max_uncertainty, uncertain_throttle=uncertain_throttle,
    )

    def warn(msg: str) -> None:
        click.echo(msg, err=True)

    opened = []
    try:
        for spec in sinks:
            opened.append(open_sink(spec, warn=warn))
        with stop_on_signals() as stop:
            _run(model, source, config, max_frames, opened, stop, every_frame, threads, delegate,
                 reconnect_timeout, stall_timeout, allow_frozen, trust_model, warn, requested)
    finally:
        for s in opened:
            s.close()


def _run(model, source, config, max_frames, sinks, stop, every_frame, threads, delegate, reconnect_timeout,
         stall_timeout, allow_frozen, trust_model, warn, requested=None) -> None:
    """Start up (interruptible), drive, and make sure the last command anyone received is neutral 'stopped'."""
    from edgecnn.runtime.failsafe import Command  # lazy: cli

    sent_stop = False

    def send(cmd: Command) -> None:
        nonlocal sent_stop
        sent_stop = sent_stop or cmd.state == "stopped"
        error = None
        for s in sinks:  # every sink gets every command, even when another one fails
            try:
                s.send(cmd)
            except OutputError as exc:
                error = error or exc
        if error:
            raise error

    result = None
    try:
        from edgecnn.runtime.sandbox import check_model  # lazy: cli
        from edgecnn.runtime.sources import (  # lazy: cli
            capture_note,
            capture_reason,
            choose_capture_size,
            open_source,
        )
        from edgecnn.runtime.steer import (  # lazy: cli
            Stopped,
            run_interruptibly,
            steer_stream,
        )

        def start():
            if not trust_model:
                check_model(model, threads=threads, delegate=delegate)
            predictor = _load_steering_model(model, threads, delegate)
            c = predictor.contract
            asked = choose_capture_size(requested, c.source_size, (c.input_width, c.input_height))
            src = open_source(source, every_frame=every_frame, give_up_s=reconnect_timeout, stall_s=stall_timeout,
                              warn=warn, capture_size=asked)
            note = capture_note(src, asked, capture_reason(requested, c.source_size))
            if note:
                warn(note)
            return predictor, src

        try:
            # Start-up on a helper thread: opening a camera can block in C for 30 s where no signal handler runs.
            predictor, src = run_interruptibly(start, stop)
        except Stopped:
            pass
        else:
            result = steer_stream(src, predictor, config, on_command=send, max_frames=max_frames, stop=stop,
                                  detect_frozen=not allow_frozen)
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: still a clean stop
    except EdgecnnError:
        # Ctrl-C in a terminal also reaches the sandbox child checking the model, which then "fails": a stop.
        if not stop.requested:
            raise
    finally:
        if not sent_stop:  # stopped before the loop ran (or it failed to start): say so to the car anyway
            send(Command(time.time(), None, 0.0, 0.0, None, "stopped"))
    if result is not None:
        click.echo(result.format(), err=True)
    else:
        click.echo(f"stopped by {stop.signal or 'request'} before the first frame", err=True)


def _load_steering_model(model, threads, delegate):
    """A Predictor for an edgecnn steering model; ModelError (one line) for anything else."""
    from edgecnn.runtime.interpreter import read_model_bytes  # lazy: cli
    from edgecnn.runtime.metadata import read_contract  # lazy: cli
    from edgecnn.runtime.predictor import Predictor  # lazy: cli

    data = read_model_bytes(model)
    contract = read_contract(data)
    if contract is None:
        raise ModelError(f"{model} has no edgecnn contract; steer needs a steering model exported by edgecnn "
                         "(it records the steering head and input preprocessing)")
    if contract.task != "steer":
        raise ModelError(f"{model} is a {contract.task!r} model; steer needs a steering model "
                         "(train with --task steer)")
    return Predictor(data, threads=threads, delegate=delegate, contract=contract)
