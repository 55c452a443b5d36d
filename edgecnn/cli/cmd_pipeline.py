"""``edgecnn pipeline``."""

from __future__ import annotations

from pathlib import Path

import click

from edgecnn.contract import RESIZE_METHODS
from edgecnn.pipeline.config import PipelineConfig, make_config
from edgecnn.tfimport import import_tensorflow
from edgecnn.train.tasks import list_tasks

_D = PipelineConfig()  # the defaults, for the help texts


@click.command("pipeline")
@click.option("--task", type=click.Choice(list_tasks()), default=None, help=f"Task (default {_D.task}).")
@click.option("--data", default=None, help="Data set folder (default: generate the built-in one).")
@click.option("--arch", default=None, help="Architecture (default: the task's, "
              + " / ".join(PipelineConfig(task=t).resolved_arch for t in list_tasks()) + ").")
@click.option("--out", default=None, help="Pipeline folder (default: runs/<task>).")
@click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False),
              help="TOML file setting any option (see README).")
@click.option("--epochs", type=int, default=None, help=f"Maximum training epochs (default {_D.epochs}).")
@click.option("--img-size", default=None, help="Model input N or WIDTHxHEIGHT (default: the architecture's size).")
@click.option("--per-class", type=int, default=None, help=f"Built-in shapes: images per class (default {_D.per_class}).")
@click.option("--frames", type=int, default=None, help=f"Built-in roads: frames (default {_D.frames}).")
@click.option("--seed", type=int, default=None, help=f"Random seed (default {_D.seed}).")
@click.option("--closed-loop", type=int, default=None, help="Steering: simulated roads per variant in compare.")
@click.option("--compare-runs", type=int, default=None, help=f"Timed inferences per variant (default {_D.compare_runs}).")
@click.option("--crop", default=None, metavar="TOP,BOTTOM",
              help="Rows removed from every frame before resizing (as edgecnn train --crop). Default: none.")
@click.option("--resize", type=click.Choice(RESIZE_METHODS), default=None,
              help=f"How frames are shrunk to the model input (as edgecnn train --resize; default {_D.resize}).")
def cli(task, data, arch, out, config_file, epochs, img_size, per_class, frames, seed, closed_loop, compare_runs,
        crop, resize):
    """Run data -> train -> calibrate -> quantize + export -> compare in one go.

    Each stage is skipped when its output is already there with the same options, so re-running resumes an
    interrupted pipeline. Ends with the comparison table and the paths of the report, plot and device bundle.
    """
    cfg = make_config(config_file, task=task, data=data, arch=arch, epochs=epochs, img_size=img_size,
                      per_class=per_class, frames=frames, seed=seed, closed_loop=closed_loop,
                      compare_runs=compare_runs, out=out, crop=crop, resize=resize)
    import_tensorflow()  # quietly, before the stages import the TensorFlow side
    from edgecnn.pipeline.stages import Paths, run_pipeline  # lazy: cli
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
