"""``edgecnn classify``: run a .tflite classifier on a camera, stream, video or images (no TensorFlow)."""

from __future__ import annotations

import json
import sys

import click

from edgecnn.sizes import parse_size


def _floats(value: str | None, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.replace(" ", "").split(",") if v)
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas, got: {value!r}", param_hint=name) from None


@click.command("classify")
@click.option("--model", "-m", "model", required=True, type=click.Path(),
              help="The .tflite model, or a bundle folder (its model_int8.tflite).")
@click.option("--source", "-s", "source", default=None,
              help="Camera index (0), /dev/videoN, rtsp/http URL, picamera2, video file, image, folder or glob.")
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--top-k", "-k", default=3, show_default=True, type=click.IntRange(min=1), help="Classes per frame.")
@click.option("--max-frames", "-n", default=None, type=click.IntRange(min=1), help="Stop after N frames.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per frame on stdout (summary on stderr).")
@click.option("--show", is_flag=True, help="Show an annotated window (needs a GUI build of OpenCV).")
@click.option("--record", default=None, type=click.Path(dir_okay=False), help="Write the annotated video (.mp4).")
@click.option("--every-frame", is_flag=True, help="Video files: process every frame instead of playing in real time.")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="CPU threads for the interpreter.")
@click.option("--delegate", default="xnnpack", show_default=True,
              type=click.Choice(["xnnpack", "none", "edgetpu"]), help="Accelerator (edgetpu needs libedgetpu.so.1).")
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
@click.option("--reconnect-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Cameras/streams: give up after this many seconds without a frame.")
@click.option("--trust-model", is_flag=True,
              help="Skip the check that loads the model in a sandboxed child process first (faster start).")
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
    from edgecnn.runtime.sandbox import check_model  # lazy: cli
    from edgecnn.runtime.sources import (  # lazy: cli
        capture_note,
        capture_reason,
        choose_capture_size,
        open_images,
        open_source,
    )

    if bool(source) == bool(images):
        raise click.UsageError("give either --source S or one or more IMAGE files, not both and not neither")
    requested = parse_size(capture_size, "--capture-size", minimum=16) if capture_size else None
    if not trust_model:
        check_model(model, threads=threads, delegate=delegate)
    options = ContractOptions(
        labels=labels, mean=_floats(mean, "--mean"), std=_floats(std, "--std"), input_range=input_range,
        color_order=None if rgb is None else ("RGB" if rgb else "BGR"),
    )
    from edgecnn.runtime.pilots import steering_kind  # lazy: cli

    kind = steering_kind(model)
    if kind is not None:  # a steering output is not a class score: refuse instead of printing class "0"
        from edgecnn.errors import ModelError  # lazy: cli

        raise ModelError(f"{model} is a steering model ({kind}); classify needs a classifier; drive with "
                         f"`edgecnn steer --model {model} --source ...`")
    predictor = Predictor(model, threads=threads, delegate=delegate, options=options)
    if predictor.contract.task == "segment":  # its output is a class map, not one score per class
        from edgecnn.errors import ModelError  # lazy: cli

        raise ModelError(f"{model} is a 'segment' model; classify needs a classifier (use `edgecnn segment "
                         "--model ...` for this one)")

    def warn(msg: str) -> None:
        click.echo(msg, err=True)

    view = None
    if serve:
        from edgecnn.runtime.live.policy import parse_serve  # lazy: cli
        from edgecnn.runtime.live.server import LiveView  # lazy: cli
        from edgecnn.runtime.live.tap import FrameTap, publish_classification  # lazy: cli

        view = LiveView.start(parse_serve(serve), kind="classify", title=str(model), announce=warn)
    c = predictor.contract
    asked = choose_capture_size(requested, c.source_size, (c.input_width, c.input_height))
    src = open_images(list(images), warn=warn) if images else open_source(
        source, every_frame=every_frame, give_up_s=reconnect_timeout, warn=warn, capture_size=asked
    )
    note = capture_note(src, asked, capture_reason(requested, c.source_size))
    if note:
        warn(note)
    if view is not None:
        src = tap = FrameTap(src)

    def emit(result) -> None:
        if as_json:
            sys.stdout.write(json.dumps(result.to_dict()) + "\n")
            sys.stdout.flush()
        else:
            click.echo(result.format())
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
