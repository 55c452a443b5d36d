"""``edgecnn segment``: run a .tflite segmentation model on a camera, stream, video or images (no TensorFlow)."""

from __future__ import annotations

import click

from edgecnn.cli.cmd_classify import (
    connection_options,
    frames_options,
    print_result,
    runtime_options,
    start_checks,
)


@click.command("segment")
@click.option("--model", "-m", "model", required=True, type=click.Path(),
              help="The .tflite segmentation model, or a bundle folder (its model_int8.tflite).")
@frames_options
@click.option("--max-frames", "-n", default=None, type=click.IntRange(min=1), help="Stop after N frames.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per frame on stdout (share of pixels per class; summary on stderr).")
@click.option("--out-masks", default=None, type=click.Path(file_okay=False),
              help="Write each frame's class map to DIR/<image stem>.png (8-bit class indexes, the image's size).")
@click.option("--show", is_flag=True, help="Show the coloured mask overlay (needs a GUI build of OpenCV).")
@click.option("--record", default=None, type=click.Path(dir_okay=False), help="Write the overlay video (.mp4).")
@runtime_options
@click.option("--capture-size", default=None, metavar="WxH",
              help="Cameras: open at this size (default: the model's training frame size, else its input size).")
@connection_options
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
    from edgecnn.runtime.segment import (  # lazy: cli
        require_segmentation,
        segment_stream,
    )
    from edgecnn.runtime.sources import open_for_model  # lazy: cli

    requested = start_checks(model, source, images, capture_size, trust_model, threads, delegate)
    predictor = Predictor(model, threads=threads, delegate=delegate)
    require_segmentation(predictor)  # before a camera is opened

    def warn(msg: str) -> None:
        click.echo(msg, err=True)

    src = open_for_model(predictor.contract, source, images, every_frame=every_frame, give_up_s=reconnect_timeout,
                         warn=warn, capture_size=requested)

    stats = segment_stream(src, predictor, max_frames=max_frames, on_result=lambda r: print_result(r, as_json), show=show, record=record,
                           out_masks=out_masks)
    click.echo(stats.format(), err=True)
    if record and stats.frames:
        click.echo(f"recorded {record}", err=True)
    if out_masks and stats.frames:
        click.echo(f"wrote {stats.frames} mask(s) to {out_masks}", err=True)
