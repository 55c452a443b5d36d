"""``edgecnn segment``: run a .tflite segmentation model on a camera, stream, video or images (no TensorFlow)."""

from __future__ import annotations

import json
import sys

import click

from edgecnn.sizes import parse_size


@click.command("segment")
@click.option("--model", "-m", "model", required=True, type=click.Path(),
              help="The .tflite segmentation model, or a bundle folder (its model_int8.tflite).")
@click.option("--source", "-s", "source", default=None,
              help="Camera index (0), /dev/videoN, rtsp/http URL, picamera2, video file, image, folder or glob.")
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--max-frames", "-n", default=None, type=click.IntRange(min=1), help="Stop after N frames.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per frame on stdout (share of pixels per class; summary on stderr).")
@click.option("--out-masks", default=None, type=click.Path(file_okay=False),
              help="Write each frame's class map to DIR/<image stem>.png (8-bit class indexes, the image's size).")
@click.option("--show", is_flag=True, help="Show the coloured mask overlay (needs a GUI build of OpenCV).")
@click.option("--record", default=None, type=click.Path(dir_okay=False), help="Write the overlay video (.mp4).")
@click.option("--every-frame", is_flag=True, help="Video files: process every frame instead of playing in real time.")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="CPU threads for the interpreter.")
@click.option("--delegate", default="xnnpack", show_default=True,
              type=click.Choice(["xnnpack", "none", "edgetpu"]), help="Accelerator (edgetpu needs libedgetpu.so.1).")
@click.option("--capture-size", default=None, metavar="WxH",
              help="Cameras: open at this size (default: the model's training frame size, else its input size).")
@click.option("--reconnect-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Cameras/streams: give up after this many seconds without a frame.")
@click.option("--trust-model", is_flag=True,
              help="Skip the check that loads the model in a sandboxed child process first (faster start).")
def cli(model, source, images, max_frames, as_json, out_masks, show, record, every_frame, threads, delegate,
        capture_size, reconnect_timeout, trust_model) -> None:
    """Label every pixel of frames from a camera, stream, video or image files with a .tflite segmentation model.

    \b
    Examples:
      edgecnn segment --model roads_seg/model_int8.tflite --source 0 --show
      edgecnn segment --model shapes_fcn_int8.tflite a.png b.png --out-masks masks/
      edgecnn segment --model m.tflite --source clip.mp4 --every-frame --json --record overlay.mp4

    The model's contract names the classes (background first). The class map is resized back to each frame
    with nearest-neighbour; Ctrl-C stops and prints the latency summary.
    """
    from edgecnn.runtime.predictor import Predictor  # lazy: cli
    from edgecnn.runtime.sandbox import check_model  # lazy: cli
    from edgecnn.runtime.segment import (  # lazy: cli
        require_segmentation,
        segment_stream,
    )
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
    predictor = Predictor(model, threads=threads, delegate=delegate)
    require_segmentation(predictor)  # before a camera is opened

    def warn(msg: str) -> None:
        click.echo(msg, err=True)

    c = predictor.contract
    asked = choose_capture_size(requested, c.source_size, (c.input_width, c.input_height))
    src = open_images(list(images), warn=warn) if images else open_source(
        source, every_frame=every_frame, give_up_s=reconnect_timeout, warn=warn, capture_size=asked
    )
    note = capture_note(src, asked, capture_reason(requested, c.source_size))
    if note:
        warn(note)

    def emit(result) -> None:
        if as_json:
            sys.stdout.write(json.dumps(result.to_dict()) + "\n")
            sys.stdout.flush()
        else:
            click.echo(result.format())

    stats = segment_stream(src, predictor, max_frames=max_frames, on_result=emit, show=show, record=record,
                           out_masks=out_masks)
    click.echo(stats.format(), err=True)
    if record and stats.frames:
        click.echo(f"recorded {record}", err=True)
    if out_masks and stats.frames:
        click.echo(f"wrote {stats.frames} mask(s) to {out_masks}", err=True)
