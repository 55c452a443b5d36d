"""``edgecnn export``: a trained run -> a device bundle (firmware_models/NAME)."""

from __future__ import annotations

import click


@click.command("export")
@click.argument("run", type=click.Path())
@click.option("--calibration", required=True, type=click.Path(), help="Calibration set folder (calibration/NAME).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Bundle folder (firmware_models/NAME).")
@click.option("--precision", "precisions", multiple=True,
              type=click.Choice(["fp32", "fp16", "dynamic", "int8", "int16x8"]),
              help="Extra precisions to include beside model_int8.tflite (repeatable).")
@click.option("--io", "io_type", type=click.Choice(["int8", "uint8"]), default="int8", show_default=True,
              help="Input/output type of the int8 model.")
@click.option("--edgetpu", is_flag=True, help="Add an Edge TPU readiness report (and compile if edgetpu_compiler is on PATH).")
@click.option("--c-array", is_flag=True, help="Add a C source/header pair for TensorFlow Lite Micro and check it in tflite-micro.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option("--allow-parity-drift", is_flag=True,
              help="Write the bundle even when the fp32 TFLite model differs from Keras beyond the tolerance "
                   "(1e-4); the model card records it.")
def cli(run, calibration, out, precisions, io_type, edgetpu, c_array, overwrite, allow_parity_drift):
    """Write a device bundle for RUN: model_int8.tflite with the contract inside, labels.txt, fidelity.csv and
    model_card.json (sizes, sha256 of every file, test metrics of the float and exported models, versions).

    The bundle is built beside OUT and swapped in when complete; the test split it is scored on never
    overlaps the calibration set. When Keras and its fp32 TFLite conversion differ by more than 1e-4 on the test
    split, export shows the worst inputs and writes nothing (unless --allow-parity-drift).
    """
    from edgecnn.export.bundle import export_run  # lazy: cli
    from edgecnn.tfimport import import_tensorflow  # lazy: cli

    log = lambda m: click.echo(m, err=True)  # noqa: E731
    import_tensorflow()  # first, inside its quiet start-up: Keras would otherwise start it noisily
    r = export_run(run, calibration, out, precisions, io_type, edgetpu, c_array, overwrite, log=log,
                   allow_parity_drift=allow_parity_drift)
    card = r.card
    click.echo(r.fidelity_table)
    for name, m in card.metrics.items():
        click.echo(f"test {m['metric']} {name}: {m['value']:.4f} ({m['count']} images)")
    p = card.parity
    click.echo(r.parity.summary() + "; " + ", ".join(f"{k}: {v:.4f}" for k, v in p.items() if k.endswith("agreement")))
    click.echo("sizes: " + ", ".join(f"{k} {v} B" for k, v in card.sizes.items())
               + f"; int8 is {p['int8_size_ratio_vs_fp32']:.2f}x smaller than fp32")
    for text in (r.edgetpu_text, r.micro_text):
        if text:
            click.echo(text)
    click.echo(f"wrote {r.root} ({', '.join(card.files)}, model_card.json)")
