"""``edgecnn train``.

Every default shown here comes from :class:`edgecnn.train.config.TrainConfig` (and
:class:`edgecnn.train.cluster.DistributeOptions`), every choice from a registry, so ``--help``, the pipeline and
the library agree. Importing this module imports no TensorFlow: the registries and the trainer module are read
without it (training starts TensorFlow itself).
"""

from __future__ import annotations

import click

from edgecnn.contract import RESIZE_METHODS
from edgecnn.data.navigation import JUNCTION_LABELS
from edgecnn.models.registry import list_models
from edgecnn.sizes import format_size, parse_size
from edgecnn.train.cluster import STRATEGIES, DistributeOptions, parse_workers
from edgecnn.train.config import (
    DEFAULTS,
    INPUT_RANGE_CHOICES,
    TrainConfig,
    default_img_size,
    parse_crop,
)
from edgecnn.train.sanity import MIN_PER_CLASS
from edgecnn.train.tasks import get_task, head_choices, list_tasks
from edgecnn.train.trainer import train


class CropRows(click.ParamType):
    """``--crop TOP,BOTTOM`` -> ``(top, bottom)`` (:func:`edgecnn.train.config.parse_crop`; a bad value is one
    OptionError line); the default ``()`` passes through."""

    name = "TOP,BOTTOM"

    def convert(self, value, param, ctx):
        return value if isinstance(value, tuple) else parse_crop(value)


def _arch_help() -> str:
    per_task = ", ".join(f"{get_task(t).default_arch} for {t}" for t in list_tasks())
    return f"Architecture (see `edgecnn models`). Default: {per_task}."


def _size_help() -> str:
    sizes = ", ".join(f"{s.name} {format_size(*default_img_size(s.name))}" for s in list_models())
    return f"Model input N or WIDTHxHEIGHT. Default: the architecture's own size ({sizes})."


@click.command("train")
@click.argument("data", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder to write (runs/NAME).")
@click.option("--arch", default=None, help=_arch_help())
@click.option("--task", type=click.Choice(list_tasks()), default=DEFAULTS["task"], show_default=True)
@click.option("--img-size", default=None, help=_size_help())
@click.option("--epochs", default=DEFAULTS["epochs"], show_default=True, help="Maximum epochs (early stopping may end sooner).")
@click.option("--batch", default=DEFAULTS["batch"], show_default=True, help="Batch size (per replica).")
@click.option("--seed", default=DEFAULTS["seed"], show_default=True, help="Random seed.")
@click.option("--lr", default=DEFAULTS["lr"], show_default=True, help="Adam learning rate.")
@click.option("--patience", default=DEFAULTS["patience"], show_default=True,
              help="Early-stopping patience (epochs without a better val loss); the learning rate halves after "
                   "half as many.")
@click.option("--augment/--no-augment", default=DEFAULTS["augment"],
              help="Training-time augmentation. Default: what fits the data (on for image folders and recordings; "
                   "off for `edgecnn data roads` output, whose frames already vary and whose right-lane world a "
                   "mirror flip would break).")
@click.option("--input-range", type=click.Choice(INPUT_RANGE_CHOICES), default=DEFAULTS["input_range"], show_default=True,
              help="Pixel normalisation.")
@click.option("--head", type=click.Choice(head_choices()), default=DEFAULTS["head"], show_default=True, help="Steering head.")
@click.option("--components", default=DEFAULTS["components"], show_default=True, help="Mixture components for --head gmm.")
@click.option("--throttle", is_flag=True, default=DEFAULTS["throttle"], help="Steering models also predict throttle.")
@click.option("--crop", type=CropRows(), default=DEFAULTS["crop"],
              help="Rows removed from the top and bottom of every frame before resizing, in rows of the data's "
                   "frames (a Donkey Car tub: 40,0 drops the sky). Recorded in the model's contract, so the device "
                   "crops the same (scaled when its camera runs at another height). Default: none.")
@click.option("--resize", type=click.Choice(RESIZE_METHODS), default=DEFAULTS["resize"], show_default=True,
              help="How frames are shrunk to the model input (see edgecnn.preprocess.resize); recorded in the "
                   "contract and used on the device too.")
@click.option("--unrouted", is_flag=True, default=not DEFAULTS["routed"],
              help="--task navigate: the map shows the roads only (no route channel); the mixture must then show "
                   "every branch at a junction. Default: routed (roads + route).")
@click.option("--junction-labels", type=click.Choice(JUNCTION_LABELS), default=DEFAULTS["junction_labels"],
              show_default=True,
              help="--task navigate: what a junction frame is labelled with. route: the branch its route took. "
                   "branches: on the approach, every branch's steering (the data's branch_steering column) at "
                   "equal weight, since an unrouted model cannot see which one the route takes. auto: branches "
                   "for --unrouted on data that has the column, else route.")
@click.option("--dropout", type=float, default=DEFAULTS["dropout"],
              help="--task navigate: dropout after navnet's first two dense layers, in [0, 1). Default: 0 (see "
                   "the README for what 0.2 did to an unrouted model).")
@click.option("--overwrite", is_flag=True, help="Delete OUT and train from scratch.")
@click.option("--force", is_flag=True,
              help=f"Train even on data under the floor (fewer than {MIN_PER_CLASS} images in a class); the "
                   "warning stays in metrics.json.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default=DistributeOptions.strategy, show_default=True,
              help="tf.distribute strategy. auto: multiworker when TF_CONFIG or --workers is set, mirrored with 2+ "
                   "GPUs, else none (plain Keras). --batch is per replica.")
@click.option("--workers", default=None, metavar="HOST:PORT,...",
              help="Multi-worker cluster, chief first (instead of TF_CONFIG). Every worker runs the same command.")
@click.option("--worker-index", type=int, default=None, help="This worker's position in --workers (0 = chief).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=DEFAULTS["cache_dir"],
              help="Cache preprocessed images in files here (data sets larger than memory); default: memory when "
                   "small, else stream from disk.")
@click.option("--collective-timeout", type=float, default=DistributeOptions.collective_timeout, show_default=True,
              help="Seconds a worker waits for the others at one step before failing (multiworker).")
@click.option("--logical-cpus", type=int, default=0, hidden=True, help="Split the CPU into N logical devices (tests).")
@click.option("--dump-weights", type=click.Path(dir_okay=False), default=None, hidden=True,
              help="Write this process's final weights to an .npz (tests).")
def cli(data, out, arch, task, img_size, epochs, batch, seed, lr, patience, augment, input_range, head, components, throttle,
        crop, resize, unrouted, junction_labels, dropout, overwrite, force, strategy, workers, worker_index, cache_dir, collective_timeout, logical_cpus, dump_weights):
    """Train a compact CNN on DATA and write a run folder.

    DATA is an image folder (one sub-folder per class) for classification, or a steering data set (Donkey Car
    tub, CSV, or `edgecnn data roads` output) for `--task steer`, or `edgecnn data roads --networks` output for
    `--task navigate` (camera + map, routed by default, `--unrouted` for the roads-only map). Re-running the same command after an
    interruption resumes where it stopped.

    Several GPUs: `--strategy mirrored`. Several hosts: run the same command on every host with `--strategy
    multiworker` and TF_CONFIG (or `--workers h1:port,h2:port --worker-index i`); OUT must be a folder every
    worker sees for resume; only the chief (worker 0) writes it.
    """
    dist = DistributeOptions(
        strategy=strategy, workers=parse_workers(workers) if workers is not None else (), worker_index=worker_index,
        logical_cpus=logical_cpus, dump_weights=dump_weights, collective_timeout=collective_timeout,
    )
    config = TrainConfig(
        data=data, out=out, arch=arch, task=task, img_size=parse_size(img_size) if img_size else None, epochs=epochs,
        batch=batch, seed=seed, lr=lr, patience=patience, augment=augment, input_range=input_range, head=head,
        components=components, throttle=throttle, cache_dir=cache_dir, routed=not unrouted, crop=crop,
        resize=resize, junction_labels=junction_labels, dropout=dropout,
    )
    try:
        result = train(config, overwrite=overwrite, log=lambda m: click.echo(m, err=True), dist=dist, force=force)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: {out} keeps the last finished epoch; run the same command again to resume "
                   "(add --overwrite to start from scratch)", err=True)
        raise
    m = result.metrics
    if result.extra.get("chief") is False:
        click.echo(f"worker {result.extra['task_index']} done after {result.epochs_run} epoch(s); the chief writes {out}")
        return
    if result.already_done:
        click.echo(f"{out} is already trained (use --overwrite to retrain).")
    shown = {k: v for k, v in m.items() if isinstance(v, (int, float))}
    click.echo(f"run: {result.run_dir}  " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))
    if isinstance(m.get("coverage"), dict):  # a mixture model: its calibration against the Gaussian ideal
        ideal = m.get("coverage_ideal", {})
        click.echo("coverage within 1/2/3 sigma: " + " / ".join(
            f"{m['coverage'][k]:.3f} (ideal {ideal.get(k, float('nan')):.3f})" for k in ("1", "2", "3")))
    j = m.get("junctions")
    if isinstance(j, dict):
        figures = {k: v for k, v in j.items() if k.endswith("_share") and v is not None}
        click.echo("junctions: " + "  ".join(f"{k}={v:.3f}" for k, v in figures.items())
                   + f"  (junction frames {j.get('junction_frames')}, road frames {j.get('road_frames')})")
