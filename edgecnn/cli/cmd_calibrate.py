"""``edgecnn calibrate``: choose a calibration set from a training split."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("calibrate")
@click.argument("data", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Set folder to write (calibration/NAME).")
@click.option("--count", default=300, show_default=True, help="Images in the set (>= 100 recommended).")
@click.option("--seed", default=0, show_default=True, help="Random seed; the same seed picks the same images.")
@click.option("--img-size", default=None,
              help="Model input N or WIDTHxHEIGHT when DATA is an image folder (default 64); a run folder's contract "
                   "decides otherwise.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def cli(data, out, count, seed, img_size, overwrite):
    """Pick a representative calibration set from the TRAINING split of DATA.

    DATA is a run folder (runs/NAME, written by `edgecnn train`: its split.json's train split and the model's
    input size are used) or an image folder (split as training splits it). Classes are sampled in proportion
    (steering: spread over the steering range); the test split is never used. Writes images.npy, targets.npy,
    MANIFEST.json (sha256 of every item and of the set) and coverage.json, and prints the coverage report. A
    navigation run (`--task navigate`) stores its second input too: maps.npy, the map rasters of the same frames.
    """
    from edgecnn.errors import DataError  # lazy: cli
    from edgecnn.quantize import calibration as cal  # lazy: cli
    from edgecnn.quantize.remembered import remember  # lazy: cli
    from edgecnn.sizes import format_size, parse_size  # lazy: cli
    from edgecnn.train.run import is_run_folder  # lazy: cli

    if count <= 0:
        raise click.BadParameter(f"--count must be positive, got {count}")
    size = parse_size(img_size) if img_size is not None else None  # (width, height)
    if is_run_folder(data):
        src = cal.source_from_run(data)
        if size is not None and size != (src.input_width, src.input_height):
            raise DataError(f"--img-size {img_size} differs from the run's input size "
                            f"{format_size(src.input_width, src.input_height)}; omit --img-size for a run folder")
    elif Path(data).is_dir():
        w, h = size or (64, 64)
        src = cal.source_from_data(data, (h, w))
    else:
        raise DataError(f"{data} is neither a run folder (with split.json and contract.json) nor an image folder")
    with click.progressbar(length=min(count, len(src.items)), label="loading", file=click.get_text_stream("stderr")) as bar:
        last = [0]

        def progress(done: int, total: int) -> None:
            bar.update(done - last[0])
            last[0] = done

        path, coverage = cal.build(src, out, count=count, seed=seed, overwrite=overwrite, progress=progress)
    click.echo(coverage.text())
    manifest = cal.load_calibration(path).manifest
    maps = manifest.get("inputs", {}).get("map")
    with_maps = (f" + {maps['shape'][0]}x{maps['shape'][1]} maps ({', '.join(maps['channels'])})" if maps else "")
    click.echo(f"wrote {path} ({manifest['count']} images{with_maps}, {format_size(src.input_width, src.input_height)}, "
               f"sha256 {manifest['sha256'][:16]}...)")
    if is_run_folder(data):
        remember(data, path)
        click.echo(f"{data} remembers this set: quantize, export and compare use it when --calibration is not given")
