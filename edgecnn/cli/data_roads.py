"""``edgecnn data roads``: the built-in steering data set (registered on the ``data`` group by cmd_data.py)."""

from __future__ import annotations

import sys
import time

import click

from edgecnn.data import roads as gen
from edgecnn.errors import OptionError
from edgecnn.runtime.environment import usable_cores
from edgecnn.sizes import format_size, parse_size


@click.command("roads")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--n", "--frames", "n", default=gen.DEFAULT_FRAMES, show_default=True, help="Number of frames.")
@click.option("--size", default="160x120", show_default=True, help="Frame size WIDTHxHEIGHT in pixels.")
@click.option("--seed", default=0, show_default=True, help="Random seed; the same seed gives the same frames.")
@click.option("--per-road", default=gen.DEFAULT_PER_ROAD, show_default=True,
              help="Frames rendered on each generated road (few per road: more different scenes).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it already exists.")
@click.option("--masks", is_flag=True,
              help="Also write masks/ (per pixel: 0 other, 1 road surface, 2 lane marking) and labels.txt for "
                   "segmentation.")
@click.option("--networks", is_flag=True,
              help="Road networks with T-junctions, crossroads and forks: frames with their coarse maps (maps/), "
                   "routes (routes/) and networks.json, for `edgecnn train --task navigate`.")
@click.option("--per-route", type=int, default=None,
              help="With --networks: frames rendered on each route (default 6).")
@click.option("--pose-noise", type=float, default=None,
              help="With --networks: the maps' pose error, times the default (1 sigma 0.25 m and 4 deg; the "
                   "100 ms delay is kept; default 1, 0 = exact position and heading).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes rendering at once (default: one per available core). The files are the same for "
                   "any number.")
def roads(out: str, n: int, size: str, seed: int, per_road: int, overwrite: bool, masks: bool, networks: bool,
          per_route: int | None, pose_noise: float | None, workers: int | None) -> None:
    """Render procedural road frames labelled with an ideal controller's steering.

    Writes OUT/labels.csv (image,steering; steering in [-1, 1], positive = right), OUT/images/*.jpg and
    OUT/roads.json. Frames come from random poses (lateral offset, heading error) on curvy two-lane roads with
    varied surfaces, markings, lighting, shadows and distractors. `edgecnn simulate` drives on different roads
    (a disjoint random stream), so its scores are on unseen roads.

    With --networks: road networks with junctions; each frame also gets its map (maps/, drawn around a noisy
    pose estimate) and the columns map,network,route,junction,branch,options,x,y,heading,est_x,est_y,est_heading;
    routes/ holds each route as a route file, networks.json the networks. The image,steering columns read as
    ordinary steering data.
    """
    wh = parse_size(size, option="--size", minimum=32, maximum=1920, square_ok=False)
    if not networks:
        for name, value in (("--per-route", per_route), ("--pose-noise", pose_noise)):
            if value is not None:
                raise OptionError(f"{name} needs --networks (frames on roads with junctions)")
    elif masks:
        raise OptionError("--masks is not available with --networks (segmentation masks come from plain roads)")
    start = time.perf_counter()
    bar = None  # opened on the first frame, so that an argument error stays a single line

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label="rendering", file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        if networks:
            from edgecnn.data import networks as netgen  # lazy: cli

            path = netgen.generate(out, n=n, size=wh, seed=seed, overwrite=overwrite, progress=progress,
                                   per_route=netgen.DEFAULT_PER_ROUTE if per_route is None else per_route,
                                   pose_noise=1.0 if pose_noise is None else pose_noise,
                                   workers=workers or usable_cores())
        else:
            path = gen.generate(out, n=n, size=wh, seed=seed, per_road=per_road, overwrite=overwrite,
                                progress=progress, masks=masks, workers=workers or usable_cores())
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    secs = time.perf_counter() - start
    click.echo(f"wrote {n} frames ({format_size(*wh)}, {n / max(secs, 1e-9):.0f} frames/s) to {path}")
