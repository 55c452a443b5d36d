"""``edgecnn train``."""

from __future__ import annotations

import click


def parse_size(value: str) -> tuple[int, int]:
    """``"64"`` -> (64, 64); ``"160x120"`` -> (160, 120) as (width, height)."""
    try:
        if "x" in value.lower():
            w, h = (int(v) for v in value.lower().split("x"))
        else:
            w = h = int(value)
    except ValueError:
        raise click.BadParameter(f"expected N or WIDTHxHEIGHT, got: {value!r}") from None
    if w < 8 or h < 8 or w > 4096 or h > 4096:
        raise click.BadParameter(f"size must be between 8 and 4096 pixels, got: {value!r}")
    return w, h


@click.command("train")
@click.argument("data", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder to write (runs/NAME).")
@click.option("--arch", default=None, help="Architecture (see `edgecnn models`). Default: compact, or pilotnet for steering.")
@click.option("--task", type=click.Choice(["classify", "steer"]), default="classify", show_default=True)
@click.option("--img-size", default=None, help="Model input N or WIDTHxHEIGHT. Default: 64, or 200x66 for steering.")
@click.option("--epochs", default=30, show_default=True, help="Maximum epochs (early stopping may end sooner).")
@click.option("--batch", default=32, show_default=True, help="Batch size.")
@click.option("--seed", default=0, show_default=True, help="Random seed.")
@click.option("--lr", default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--patience", default=5, show_default=True, help="Early-stopping patience (epochs without a better val loss).")
@click.option("--augment/--no-augment", default=True, show_default=True, help="Training-time augmentation.")
@click.option("--input-range", type=click.Choice(["0,1", "-1,1"]), default="0,1", show_default=True, help="Pixel normalisation.")
@click.option("--head", type=click.Choice(["regression", "gmm"]), default="regression", show_default=True, help="Steering head.")
@click.option("--components", default=3, show_default=True, help="Mixture components for --head gmm.")
@click.option("--throttle", is_flag=True, help="Steering models also predict throttle.")
@click.option("--overwrite", is_flag=True, help="Delete OUT and train from scratch.")
@click.option("--strategy", type=click.Choice(["auto", "one", "mirrored", "multiworker"]), default="auto", show_default=True,
              help="tf.distribute strategy. auto: multiworker when TF_CONFIG or --workers is set, mirrored with 2+ "
                   "GPUs, else none (plain Keras). --batch is per replica.")
@click.option("--workers", default=None, metavar="HOST:PORT,...",
              help="Multi-worker cluster, chief first (instead of TF_CONFIG). Every worker runs the same command.")
@click.option("--worker-index", type=int, default=None, help="This worker's position in --workers (0 = chief).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Cache preprocessed images in files here (data sets larger than memory); default: memory when "
                   "small, else stream from disk.")
@click.option("--collective-timeout", type=float, default=600.0, show_default=True,
              help="Seconds a worker waits for the others at one step before failing (multiworker).")
@click.option("--logical-cpus", type=int, default=0, hidden=True, help="Split the CPU into N logical devices (tests).")
@click.option("--dump-weights", type=click.Path(dir_okay=False), default=None, hidden=True,
              help="Write this process's final weights to an .npz (tests).")
def cli(data, out, arch, task, img_size, epochs, batch, seed, lr, patience, augment, input_range, head, components, throttle,
        overwrite, strategy, workers, worker_index, cache_dir, collective_timeout, logical_cpus, dump_weights):
    """Train a compact CNN on DATA and write a run folder.

    DATA is an image folder (one sub-folder per class) for classification, or a steering data set (Donkey Car
    tub, CSV, or `edgecnn data roads` output) for `--task steer`. Re-running the same command after an
    interruption resumes where it stopped.

    Several GPUs: `--strategy mirrored`. Several hosts: run the same command on every host with `--strategy
    multiworker` and TF_CONFIG (or `--workers h1:port,h2:port --worker-index i`); OUT must be a folder every
    worker sees for resume; only the chief (worker 0) writes it.
    """
    from edgecnn.train.distribute import DistributeOptions, parse_workers
    from edgecnn.train.trainer import TrainConfig, train

    if epochs < 1 or batch < 1 or lr <= 0:
        raise click.BadParameter("--epochs and --batch must be >= 1 and --lr > 0")
    dist = DistributeOptions(
        strategy=strategy, workers=parse_workers(workers) if workers is not None else (), worker_index=worker_index,
        logical_cpus=logical_cpus, dump_weights=dump_weights, collective_timeout=collective_timeout,
    )
    arch = arch or ("pilotnet" if task == "steer" else "compact")
    size = parse_size(img_size) if img_size else ((200, 66) if task == "steer" else (64, 64))
    config = TrainConfig(
        data=data, out=out, arch=arch, task=task, img_size=size, epochs=epochs, batch=batch, seed=seed, lr=lr,
        patience=patience, augment=augment, input_range=input_range, head=head, components=components,
        throttle=throttle, cache_dir=cache_dir,
    )
    result = train(config, overwrite=overwrite, log=lambda m: click.echo(m, err=True), dist=dist)
    m = result.metrics
    if result.extra.get("chief") is False:
        click.echo(f"worker {result.extra['task_index']} done after {result.epochs_run} epoch(s); the chief writes {out}")
        return
    if result.already_done:
        click.echo(f"{out} is already trained (use --overwrite to retrain).")
    shown = {k: v for k, v in m.items() if isinstance(v, (int, float))}
    click.echo(f"run: {result.run_dir}  " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))
