"""``edgecnn steer``: drive from a camera with a .tflite steering model (or a route-conditioned one with a route
file and a pose source), fail-safe (no TensorFlow)."""

from __future__ import annotations

import os
import time

import click

from edgecnn.cli.steering_options import steering_options, third_party_options
from edgecnn.errors import EdgecnnError, OptionError
from edgecnn.sizes import parse_size


@click.command("steer")
@click.option("--model", "-m", "model", required=True, type=click.Path(),
              help="The steering .tflite exported by edgecnn (its contract says how to read it), a donkeycar "
                   "pilot (recognised by its input img_in, or --pilot), or a third-party model (--input-range).")
@click.option("--source", "-s", "source", required=True,
              help="Camera index (0), /dev/videoN, rtsp/http/tcp URL, picamera2, video file, image, folder or glob "
                   "(numeric order), Donkey Car tub or steering CSV (recording order, recorded times).")
@click.option("--deadline-ms", default=500.0, show_default=True, type=click.FloatRange(min=10, max=60000),
              help="A neutral 'stale' command goes out when no frame younger than this has become a command.")
@click.option("--max-frames", "-n", default=None, type=click.IntRange(min=1),
              help="Stop after N frames turned into commands.")
@click.option("--sink", "sinks", multiple=True, default=("stdout",), show_default=True,
              help="stdout; udp://HOST:PORT (HOST defaults to 127.0.0.1); pca9685://BUS/ADDRESS?config=car.toml "
                   "(a PCA9685 PWM board on I2C, Donkey Car's pca9685://1/0x40); serial:///dev/ttyUSB0?baud=115200"
                   "&config=car.toml[&timeout_ms=500] (a microcontroller with a watchdog: examples/arduino_steer); "
                   "pca9685+emu://1/0x40?config=car.toml&dump=FILE is an emulator for tests. `edgecnn car "
                   "calibrate` writes car.toml. Repeat to send to several.")
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
@third_party_options
@click.option("--route", "route_file", default=None, type=click.Path(),
              help="Route models (task navigate): the route file (edgecnn-route-1 JSON: the network and the route, "
                   "as `edgecnn data roads --networks` writes under routes/). Needs --pose.")
@click.option("--pose", "pose_spec", default=None, metavar="SOURCE",
              help="Route models: where the car is. udp://[HOST:]PORT (JSON lines {x, y, heading, time} in the route "
                   "file's metres, heading in radians CCW from +x: odometry or the simulator); nmea+udp://[HOST:]PORT "
                   "or nmea+serial:///dev/ttyUSB0?baud=9600 (GPS GGA/RMC sentences; the route file needs an origin). "
                   "UDP binds 127.0.0.1 unless HOST is given.")
@click.option("--pose-deadline-ms", default=500.0, show_default=True, type=click.FloatRange(min=10, max=60000),
              help="Route models: a pose older than this is never used; the command is neutral, state 'pose-stale', "
                   "until fresh poses return.")
@click.option("--serve", default=None, metavar="[HOST:]PORT",
              help="Serve a live page (camera + steering gauge) on [HOST:]PORT (default host 127.0.0.1; any other "
                   "host prints a token every request needs).")
def cli(model, source, deadline_ms, max_frames, sinks, throttle, max_steering_rate, max_uncertainty,
        uncertain_throttle, every_frame, threads, delegate, reconnect_timeout, stall_timeout, capture_size,
        allow_frozen, trust_model, pilot, input_range, steering_output, steering_range, bgr, route_file=None,
        pose_spec=None, pose_deadline_ms=500.0, serve=None) -> None:
    """Steer from a camera, stream or video: one JSON command per line, neutral when anything stalls.

    \b
    Each command: {"time", "frame_time", "steering", "throttle", "uncertainty", "state", "frame"}
      time        when it was sent (epoch seconds)
      frame_time  capture time of the frame it came from (epoch seconds)
      steering    [-1, 1], positive = right; clamped and slew-rate limited
      throttle    the model's, or --throttle (default 0: the car does not move unless told)
      uncertainty steering std of a gmm model, else null
      state       ok | uncertain | stale | pose-stale | stopped  (stale, pose-stale and stopped are neutral:
                  steering 0, throttle 0)
      pose_age_ms route models only: age of the newest pose (ms since it arrived), and "pose": [x, y, heading]
                  the map was drawn from (null when none was used)

    \b
    Fail-safe: when no frame younger than --deadline-ms has become a command (camera stall, hung model, dead
    source), a neutral 'stale' command goes out within the deadline and again every half deadline; a NaN
    output becomes neutral; on exit (end, Ctrl-C, SIGTERM, error) a final neutral 'stopped' is sent. The
    latency summary goes to stderr; stdout is pure JSON lines.

    \b
    Route models (trained with --task navigate) steer from the camera and a map drawn around the car's pose
    for every frame (the same rasteriser as training): give --route FILE and --pose SOURCE. Pose fail-safe, by
    design: a pose older than --pose-deadline-ms (default 500) is never used; the command is NEUTRAL (steering
    0, throttle 0), state 'pose-stale', within the pose deadline and for every frame until fresh poses return
    (then steering ramps up from straight ahead again). Not "lane keeping on a roads-only map": a routed model
    has only seen maps with its route, and a stale map at a junction would choose a branch with confidence.
    Lines that are not poses (garbage, bad NMEA checksums) are counted and skipped; the summary says how many,
    and how often each fallback happened.

    \b
    Examples:
      edgecnn steer --model steer_int8.tflite --source 0 --throttle 0.2
      edgecnn steer --model m.tflite --source rtsp://192.168.1.20/cam --sink udp://192.168.1.30:5005
      edgecnn steer --model m.tflite --source clip.mp4 --max-frames 100 > commands.jsonl
      edgecnn steer --model nav_int8.tflite --source 0 --route routes/net0-r1.json --pose udp://:5006
    """
    from edgecnn.runtime.failsafe import FailsafeConfig  # lazy: cli
    from edgecnn.runtime.sinks import open_sink  # lazy: cli
    from edgecnn.runtime.steer import stop_on_signals  # lazy: cli

    options = steering_options(input_range, steering_output, steering_range, bgr)

    if (route_file is None) != (pose_spec is None):
        raise OptionError("--route and --pose go together: a route model needs the route file and where the car is "
                          "(--pose udp://:5006, nmea+udp://..., nmea+serial://...)")
    requested = parse_size(capture_size, "--capture-size", minimum=16) if capture_size else None
    config = FailsafeConfig(
        deadline_s=deadline_ms / 1000.0, max_rate=max_steering_rate or None, throttle=throttle,
        max_uncertainty=max_uncertainty, uncertain_throttle=uncertain_throttle,
    )

    def warn(msg: str) -> None:
        click.echo(msg, err=True)

    opened = []
    view = None
    try:
        for spec in sinks:
            opened.append(open_sink(spec, warn=warn))
        if serve:
            from edgecnn.runtime.live.policy import parse_serve  # lazy: cli
            from edgecnn.runtime.live.server import LiveView  # lazy: cli

            view = LiveView.start(parse_serve(serve), kind="steer", title=str(model), announce=warn)
        route = None if route_file is None else (route_file, pose_spec, pose_deadline_ms / 1000.0)
        with stop_on_signals() as stop:
            _run(model, source, config, max_frames, opened, stop, every_frame, threads, delegate,
                 reconnect_timeout, stall_timeout, allow_frozen, trust_model, warn, requested, pilot, options, view,
                 route)
    finally:
        for s in opened:
            s.close()
        if view is not None:
            view.close()


def _run(model, source, config, max_frames, sinks, stop, every_frame, threads, delegate, reconnect_timeout,
         stall_timeout, allow_frozen, trust_model, warn, requested=None, pilot=None, options=None,
         view=None, route=None) -> None:
    """Start up (interruptible), drive, and make sure the last command anyone received is neutral 'stopped'.

    ``route``: ``(route file, pose source, pose deadline s)`` for a route model, or None."""
    from edgecnn.runtime.failsafe import Command  # lazy: cli
    from edgecnn.runtime.sinks import send_to_all  # lazy: cli

    if view is not None:  # only then: the web server's packages stay out of a plain steer
        from edgecnn.runtime.live.tap import FrameTap, publish_command  # lazy: cli
    sent_stop = False
    tap = None  # the source wrapped for the live page (--serve)

    def send(cmd: Command) -> None:
        nonlocal sent_stop
        sent_stop = sent_stop or cmd.state == "stopped"
        try:
            send_to_all(sinks, cmd)
        finally:  # the page shows the command even when a sink failed
            if view is not None and tap is not None:
                publish_command(view, tap, cmd)

    result = None
    opened_poses = []  # the pose source, closed on the way out (opened on the start-up thread)
    try:
        from edgecnn.runtime.sandbox import check_model  # lazy: cli
        from edgecnn.runtime.sources import (  # lazy: cli
            capture_note,
            capture_reason,
            choose_capture_size,
            open_source,
        )
        from edgecnn.runtime.steer import (  # lazy: cli
            RouteInputs,
            Stopped,
            check_steering_model,
            run_interruptibly,
            steer_stream,
        )

        nav = None

        def start():
            nonlocal nav
            if route is not None:  # a bad route file or --pose fails before the model and the camera are opened
                from edgecnn.navmap import load_route  # lazy: cli
                from edgecnn.runtime.pose import parse_pose_spec  # lazy: cli

                network, planned = load_route(route[0])
                parse_pose_spec(route[1])
            if not trust_model:
                check_model(model, threads=threads, delegate=delegate)
            predictor = _load_steering_model(model, threads, delegate, pilot, options)
            check_steering_model(predictor, route is not None)
            if route is not None:
                from edgecnn.navmap import start_heading  # lazy: cli
                from edgecnn.runtime.pose import open_pose  # lazy: cli

                opened_poses.append(open_pose(route[1], network.origin, warn=warn,
                                              initial_heading=start_heading(planned)))
                nav = RouteInputs(network, planned, opened_poses[0], route[2])
            c = predictor.contract
            asked = choose_capture_size(requested, c.source_size, (c.input_width, c.input_height))
            src = open_source(source, every_frame=every_frame, give_up_s=reconnect_timeout, stall_s=stall_timeout,
                              warn=warn, capture_size=asked)
            note = capture_note(src, asked, capture_reason(requested, c.source_size))
            if note:
                warn(note)
            return predictor, (src if view is None else FrameTap(src))

        try:
            # Start-up on a helper thread: opening a camera can block in C for 30 s where no signal handler runs.
            predictor, src = run_interruptibly(start, stop)
            tap = src if view is not None else None
        except Stopped:
            pass
        else:
            result = steer_stream(src, predictor, config, on_command=send, max_frames=max_frames, stop=stop,
                                  detect_frozen=not allow_frozen, route=nav)
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: still a clean stop
    except EdgecnnError:
        # Ctrl-C in a terminal also reaches the sandbox child checking the model, which then "fails": a stop.
        if not stop.requested:
            raise
    finally:
        if not sent_stop:  # stopped before the loop ran (or it failed to start): say so to the car anyway
            send(Command(time.time(), None, 0.0, 0.0, None, "stopped"))
        for p in opened_poses:
            p.close()
    if result is not None:
        click.echo(result.format(), err=True)
    else:
        click.echo(f"stopped by {stop.signal or 'request'} before the first frame", err=True)


def _load_steering_model(model, threads, delegate, pilot=None, options=None):
    """A Predictor for an edgecnn steering or route (navigate) model, a donkeycar pilot or a third-party model
    read with ``options``; ModelError (one line) for anything else (a classifier: its contract says so)."""
    from edgecnn.runtime.interpreter import read_model_bytes  # lazy: cli
    from edgecnn.runtime.metadata import read_contract  # lazy: cli
    from edgecnn.runtime.pilots import load_steering_model  # lazy: cli
    from edgecnn.runtime.predictor import Predictor  # lazy: cli

    if pilot is None and options is None:
        data = read_model_bytes(model)
        contract = read_contract(data)
        if contract is not None and contract.task == "navigate":
            p = Predictor(data, threads=threads, delegate=delegate, contract=contract)
            p.name = os.path.basename(str(model))
            return p
    return load_steering_model(model, pilot=pilot, threads=threads, delegate=delegate, options=options)
