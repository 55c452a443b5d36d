"""``edgecnn replay``: score steering models on a recording, frame by frame, in recording order (no TensorFlow)."""

from __future__ import annotations

import click

from edgecnn.cli.steering_options import steering_options, third_party_options


@click.command("replay")
@click.argument("src", type=click.Path())
@click.option("--model", "-m", "models", multiple=True, required=True, type=click.Path(),
              help="A steering .tflite (edgecnn, or a donkeycar pilot); repeat to compare several.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for report.json.")
@click.option("--video", default=None, type=click.Path(dir_okay=False),
              help="Also write a side-by-side .mp4: the frame, the human's and each model's steering, the error.")
@click.option("--max-frames", "-n", default=None, type=click.IntRange(min=1), help="Only the first N frames.")
@third_party_options
@click.option("--threads", default=None, type=click.IntRange(min=1), help="CPU threads for the interpreter.")
@click.option("--delegate", default="xnnpack", show_default=True,
              type=click.Choice(["xnnpack", "none", "edgetpu"]), help="Accelerator.")
def cli(src, models, out_dir, video, max_frames, pilot, input_range, steering_output, steering_range, bgr, threads,
        delegate) -> None:
    """Run every model on every frame of SRC and score it against the human's steering.

    SRC is a Donkey Car tub (catalog order), a steering CSV or a folder with labels.csv (row order), a folder of
    images (numeric name order: 2.jpg before 10.jpg) or a video (frame order). Each model's raw prediction is
    kept for every frame: no slew-rate limit, no deadline, no dropped frame (those belong to a live car).

    \b
    DIR/report.json:
      models.NAME.mae, rmse, p95_abs_error, sign_agreement, per_bin   (when SRC has labels; the same metric
                                                                       function as `edgecnn train`)
      models.NAME.predictions[]: {frame, file, label, steering, throttle}   in recording order

    \b
    Examples:
      edgecnn replay data/tub --model steer_int8.tflite --model steer_fp32.tflite --out replay/
      edgecnn replay data/tub --model mypilot.tflite --model steer_int8.tflite --out replay/ --video replay/side.mp4
    """
    from edgecnn.runtime.replay import replay  # lazy: cli

    options = steering_options(input_range, steering_output, steering_range, bgr)
    report = replay(src, list(models), out_dir=out_dir, video=video, max_frames=max_frames, pilot=pilot,
                    threads=threads, delegate=delegate, options=options)
    click.echo(report.format())
    click.echo(f"report: {out_dir}/report.json" + (f"; video: {video}" if video else ""), err=True)
