"""``edgecnn classify``: run a .tflite classifier on a camera, stream, video or images (no TensorFlow)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import click

from edgecnn.sizes import parse_size


def _floats(value: str | None, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.replace(" ", "").split(",") if v)
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas, got: {value!r}", param_hint=name) from None


def _compose(*decorators: Callable) -> Callable:
    """One decorator applying ``decorators`` as if stacked in this order above a function."""
    def apply(f: Callable) -> Callable:
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


# The options ``classify`` and ``segment`` share (also in this order in their --help).
frames_options = _compose(
    click.option("--source", "-s", "source", default=None,
                 help="Camera index (0), /dev/videoN, rtsp/http URL, picamera2, video file, image, folder or glob."),
    click.argument("images", nargs=-1, type=click.Path()),
)
runtime_options = _compose(
    click.option("--every-frame", is_flag=True,
                 help="Video files: process every frame instead of playing in real time."),
    click.option("--threads", default=None, type=click.IntRange(min=1), help="CPU threads for the interpreter."),
    click.option("--delegate", default="xnnpack", show_default=True,
                 type=click.Choice(["xnnpack", "none", "edgetpu"]), help="Accelerator (edgetpu needs libedgetpu.so.1)."),
)
connection_options = _compose(
    click.option("--reconnect-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
                 help="Cameras/streams: give up after this many seconds without a frame."),
    click.option("--trust-model", is_flag=True,
                 help="Skip the check that loads the model in a sandboxed child process first (faster start)."),
)


def start_checks(model: str, source: str | None, images: tuple[str, ...], capture_size: str | None,
                 trust_model: bool, threads: int | None, delegate: str) -> tuple[int, int] | None:
    """What ``classify`` and ``segment`` check before loading the model: one of --source and IMAGE files,
    ``--capture-size`` (returned as ``(width, height)``, or None), and, unless ``--trust-model``, that the model
    loads in a sandboxed child process."""
    from edgecnn.runtime.sandbox import check_model  # lazy: cli

    if bool(source) == bool(images):
        raise click.UsageError("give either --source S or one or more IMAGE files, not both and not neither")
    requested = parse_size(capture_size, "--capture-size", minimum=16) if capture_size else None
    if not trust_model:
        check_model(model, threads=threads, delegate=delegate)
    return requested


def print_result(result, as_json: bool) -> None:
    """One frame's result on stdout: its ``--json`` line (flushed, for pipes), else its readable line."""
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        sys.stdout.flush()
    else:
        click.echo(result.format())


def _refuse_other_tasks(model: str) -> None:
    """One line (ModelError, exit 2) for a model that is not a classifier: a steering, navigate or segment model
    (their outputs are no class scores; a navigate model also needs a route map), with the command that runs it."""
    from edgecnn.errors import ModelError  # lazy: cli
    from edgecnn.runtime.interpreter import read_model_bytes  # lazy: cli
    from edgecnn.runtime.metadata import read_contract  # lazy: cli
    from edgecnn.runtime.pilots import steering_kind  # lazy: cli

    data = read_model_bytes(model)
    task = getattr(read_contract(data), "task", None)
    if task == "navigate":
        raise ModelError(f"{model} is a navigate model (camera + route map); run it with edgecnn steer --route FILE "
                         "--pose SOURCE")
    if task == "segment":  # its output is a class map, not one score per class
        raise ModelError(f"{model} is a 'segment' model; classify needs a classifier (use `edgecnn segment "
                         "--model ...` for this one)")
    kind = steering_kind(data)
    if kind is not None:  # a steering output is not a class score: refuse instead of printing class "0"
        raise ModelError(f"{model} is a steering model ({kind}); classify needs a classifier; drive with "
                         f"`edgecnn steer --model {model} --source ...`")


@click.command("classify")
@click.option("--model", "-m", "model", required=True, type=click.Path(),
              help="The .tflite model, or a bundle folder (its model_int8.tflite).")
@frames_options
@click.option("--top-k", "-k", default=3, show_default=True, type=click.IntRange(min=1), help="Classes per frame.")
@click.option("--max-frames", "-n", default=None, type=click.IntRange(min=1), help="Stop after N frames.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per frame on stdout (summary on stderr).")
@click.option("--show", is_flag=True, help="Show an annotated window (needs a GUI build of OpenCV).")
@click.option("--record", default=None, type=click.Path(dir_okay=False), help="Write the annotated video (.mp4).")
@runtime_options
@click.option("--labels", default=None, type=click.Path(dir_okay=False),
              help="Labels file for a model without an edgecnn contract ('index label' lines or one per line).")
@click.option("--mean", default=None, help="Normalisation mean (pixel 0..255), one value or one per channel: 127.5")
@click.option("--std", default=None, help="Normalisation std, one value or one per channel: 127.5")
@click.option("--input-range", default=None, type=click.Choice(["0,255", "0,1", "-1,1"]),
              help="Shorthand for --mean/--std: the range the model expects its pixels in.")
@click.option("--rgb/--bgr", "rgb", default=None, help="Channel order the model expects (default: its contract, else RGB).")
@click.option("--capture-size", default=None, metavar="WxH",
              help="Cameras: open at this size (e.g. 160x120). Default: the size of the model's training frames "
                   "when its contract records it, else the smallest common mode covering the model's input.")
@connection_options
@click.option("--serve", default=None, metavar="[HOST:]PORT",
              help="Serve a live page (camera + top classes) on [HOST:]PORT (default host 127.0.0.1; any other "
                   "host prints a token every request needs).")
def cli(model, source, images, top_k, max_frames, as_json, show, record, every_frame, threads, delegate, labels,
        mean, std, input_range, rgb, capture_size, reconnect_timeout, trust_model, serve=None) -> None:
    """Classify frames from a camera, stream, video or image files with a .tflite model.

    \b
    Examples:
      edgecnn classify --model shapes_int8.tflite --source 0
      edgecnn classify --model shapes_int8.tflite photo1.jpg photo2.png --top-k 1
      edgecnn classify --model mobilenet_quant.tflite --labels imagenet_labels.txt parrot.jpg
      edgecnn classify --model m.tflite --source clip.mp4 --every-frame --json > results.jsonl

    Our models carry their contract (input size, colour order, normalisation, labels); for a third-party model
    give --labels and --input-range (or --mean/--std) and --rgb/--bgr. Ctrl-C stops and prints the summary.
    """
    from edgecnn.runtime.classify import classify_stream  # lazy: cli
    from edgecnn.runtime.predictor import ContractOptions, Predictor  # lazy: cli
    from edgecnn.runtime.sources import open_for_model  # lazy: cli

    requested = start_checks(model, source, images, capture_size, trust_model, threads, delegate)
    options = ContractOptions(
        labels=labels, mean=_floats(mean, "--mean"), std=_floats(std, "--std"), input_range=input_range,
        color_order=None if rgb is None else ("RGB" if rgb else "BGR"),
    )
    _refuse_other_tasks(model)
    predictor = Predictor(model, threads=threads, delegate=delegate, options=options)

    def warn(msg: str) -> None:
        click.echo(msg, err=True)

    view = None
    if serve:
        from edgecnn.runtime.live.policy import parse_serve  # lazy: cli
        from edgecnn.runtime.live.server import LiveView  # lazy: cli
        from edgecnn.runtime.live.tap import (  # lazy: cli
            FrameTap,
            publish_classification,
        )

        view = LiveView.start(parse_serve(serve), kind="classify", title=str(model), announce=warn)
    src = open_for_model(predictor.contract, source, images, every_frame=every_frame, give_up_s=reconnect_timeout,
                         warn=warn, capture_size=requested)
    if view is not None:
        src = tap = FrameTap(src)

    def emit(result) -> None:
        print_result(result, as_json)
        if view is not None:
            publish_classification(view, tap, result)

    try:
        stats = classify_stream(src, predictor, top_k=top_k, max_frames=max_frames, on_result=emit, show=show,
                                record=record)
    finally:
        if view is not None:
            view.close()
    click.echo(stats.format(), err=True)
    if record and stats.frames:
        click.echo(f"recorded {record}", err=True)
