"""``edgecnn quantize``: a trained run -> one .tflite at a chosen precision, with a per-layer report."""

from __future__ import annotations

import click


@click.command("quantize")
@click.argument("run", type=click.Path())
@click.option("--calibration", default=None, type=click.Path(),
              help="Calibration set folder (calibration/NAME). Default: the set `edgecnn calibrate RUN` built and "
                   "the run remembers.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "dynamic", "int8", "int16x8"]), default="int8",
              show_default=True, help="int8 = full integer (int8 weights, activations, input and output).")
@click.option("--io", "io_type", type=click.Choice(["int8", "uint8"]), default="int8", show_default=True,
              help="Input/output type of an int8 model (uint8 for tools that want it).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .tflite path.")
@click.option("--keep-float", default=None,
              help="'auto' (keep the worst layers in float while int8 misses --tolerance) or comma-separated layer names.")
@click.option("--tolerance", default=None, type=float,
              help="For --keep-float auto: max accuracy drop in points (default 0.5) or MAE increase (steer, default 0.01) on the validation split.")
def cli(run, calibration, precision, io_type, out, keep_float, tolerance):
    """Convert RUN's Keras model (a run folder or its model.keras) to a TFLite model.

    The calibration set feeds the representative dataset through the training preprocessing. The precision is
    read back from the written model, and the model's contract (with its quantization parameters and the
    calibration sha256) is stored inside it. For int8, a per-layer error table is printed and written beside the
    model as OUT.fidelity.csv.
    """
    from edgecnn.quantize.pipeline import quantize_run  # lazy: cli
    from edgecnn.quantize.remembered import recall  # lazy: cli
    from edgecnn.tfimport import import_tensorflow  # lazy: cli

    if calibration is None:
        remembered = recall(run)
        if remembered is None:
            raise click.UsageError("--calibration is needed: pass a set (calibration/NAME), or run `edgecnn "
                                   f"calibrate {run} --out calibration/NAME` first and {run} remembers it")
        calibration = str(remembered)
        click.echo(f"calibration: {calibration} (remembered by {run})", err=True)

    log = lambda m: click.echo(m, err=True)  # noqa: E731
    kf = None
    if keep_float:
        kf = "auto" if keep_float == "auto" else [n.strip() for n in keep_float.split(",") if n.strip()]
    import_tensorflow()  # first, inside its quiet start-up: Keras would otherwise start it noisily
    r = quantize_run(run, calibration, precision, out, io_type, kf, tolerance, log=log)
    if r.fidelity is not None:
        click.echo(r.fidelity.table())
        worst = ", ".join(f"{l.op} {l.rmse_per_scale:.2f}" for l in r.fidelity.worst(3))
        click.echo(f"worst layers (rmse/scale): {worst}; {len(r.fidelity.flagged)} flagged")
    if r.keep_float is not None:
        click.echo(r.keep_float.text())
    i = r.info
    click.echo(f"wrote {r.path} ({i.size_bytes} bytes): precision {i.precision} (read from the model), input "
               f"{i.inputs[0].dtype}, output {i.outputs[0].dtype}" + (f"; report {r.fidelity_csv}" if r.fidelity_csv else ""))
