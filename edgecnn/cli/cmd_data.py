"""``edgecnn data``: generate the built-in data sets."""

from __future__ import annotations

import click


@click.group("data")
def cli() -> None:
    """Generate built-in data sets (shapes for classification, roads for steering; --masks for segmentation)."""


@cli.command("shapes")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--size", default=64, show_default=True, help="Image side in pixels.")
@click.option("--per-class", default=400, show_default=True, help="Images per class.")
@click.option("--seed", default=0, show_default=True, help="Random seed; the same seed gives the same images.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it already exists.")
@click.option("--masks", is_flag=True,
              help="Segmentation layout: images/, masks/ (class index per pixel, 0 = background) and labels.txt.")
def shapes(out: str, size: int, per_class: int, seed: int, overwrite: bool, masks: bool) -> None:
    """Generate the lecture's "is this an X?" shapes data set as an image folder (or, with --masks, as images
    with per-pixel class masks for segmentation)."""
    from edgecnn.data import shapes as gen  # lazy: cli

    with click.progressbar(length=size and per_class * len(gen.CLASSES), label="rendering", file=click.get_text_stream("stderr")) as bar:
        last = [0]

        def progress(done: int, total: int) -> None:
            bar.update(done - last[0])
            last[0] = done

        path = gen.generate(out, size=size, per_class=per_class, seed=seed, overwrite=overwrite, progress=progress,
                            masks=masks)
    what = "images with masks" if masks else "images"
    click.echo(f"wrote {per_class * len(gen.CLASSES)} {what} ({len(gen.CLASSES)} classes, {size}x{size}) to {path}")


from edgecnn.cli.data_roads import roads  # noqa: E402  (a command module of its own, registered here)

cli.add_command(roads)
