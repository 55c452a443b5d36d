"""``edgecnn pipeline``."""

from __future__ import annotations

import click


@click.command("pipeline")
@click.option("--task", type=click.Choice(["classify", "steer"]), default=None, help="classify (default) or steer.")
@click.option("--data", default=None, help="Data set folder (default: generate the built-in one).")
@click.option("--arch", default=None, help="Architecture (default: compact / pilotnet).")
@click.option("--out", default=None, help="Pipeline folder (default: runs/<task>).")
@click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False),
              help="TOML file setting any option (see README).")
@click.option("--epochs", type=int, default=None, help="Maximum training epochs (default 30).")
@click.option("--img-size", default=None, help="Model input N or WIDTHxHEIGHT.")
@click.option("--per-class", type=int, default=None, help="Built-in shapes: images per class (default 400).")
@click.option("--frames", type=int, default=None, help="Built-in roads: frames (default 2000).")
@click.option("--seed", type=int, default=None, help="Random seed (default 0).")
@click.option("--closed-loop", type=int, default=None, help="Steering: simulated roads per variant in compare.")
@click.option("--compare-runs", type=int, default=None, help="Timed inferences per variant (default 200).")
def cli(task, data, arch, out, config_file, epochs, img_size, per_class, frames, seed, closed_loop, compare_runs):
    """Run data -> train -> calibrate -> quantize + export -> compare in one go.

    Each stage is skipped when its output is already there with the same options, so re-running resumes an
    interrupted pipeline. Ends with the comparison table and the paths of the report, plot and device bundle.
    """
    from pathlib import Path

    from edgecnn.pipeline.config import make_config
    from edgecnn.pipeline.stages import Paths, run_pipeline
    from edgecnn.tfimport import import_tensorflow

    cfg = make_config(config_file, task=task, data=data, arch=arch, epochs=epochs, img_size=img_size,
                      per_class=per_class, frames=frames, seed=seed, closed_loop=closed_loop,
                      compare_runs=compare_runs, out=out)
    import_tensorflow()
    quiet = lambda m: click.echo(f"      {m}", err=True)
    results = run_pipeline(cfg, log=quiet, show=lambda m: click.echo(m, err=True))
    paths = Paths(Path(cfg.resolved_out))
    click.echo("")
    for r in results:
        if r.name == "compare":
            click.echo(r.summary)
        else:
            click.echo(f"{r.name:>16}: {r.summary}")
    click.echo(f"device bundle: {paths.bundle}  (edgecnn {'classify' if cfg.task == 'classify' else 'steer'} "
               f"--model {paths.bundle / 'model_int8.tflite'} --source 0)")
