"""``edgecnn robustness``: the robustness campaign (hostile models, kill -9, bad data, full disk, faulty cameras).

The campaign itself is a developer tool, the ``edgecnn_robustness`` distribution under ``tools/robustness`` (it
trains and exports models with TensorFlow): a device install does not ship it. This command loads it when run and
says in one line how to install it when it is missing.
"""

from __future__ import annotations

import json
import sys
import tempfile

import click

from edgecnn.atomic import write_json, write_text
from edgecnn.errors import EdgecnnError

INSTALL_HINT = ("edgecnn robustness needs the developer tools, which a device install does not ship: from an edgecnn "
                "clone run `make` or `pip install -e tools/robustness`")


@click.command("robustness")
@click.option("--mutants", default=200, show_default=True, type=click.IntRange(min=0),
              help="Damaged models, each run through inspect, benchmark and classify (1000+ for the long form).")
@click.option("--cli-mutants", default=10, show_default=True, type=click.IntRange(min=0),
              help="Of those, how many also go through the real CLI commands (3 processes each).")
@click.option("--kill-trials", default=6, show_default=True, type=click.IntRange(min=0),
              help="kill -9 trials, half during quantize and half during export (20+ for the long form).")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1), help="Mutants tested at once.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for data, mutants and kill delays.")
@click.option("--no-camera", is_flag=True, help="Skip the fake-camera cases (classify and steer).")
@click.option("--full-disk-export", is_flag=True, help="Also run export into a full and a read-only folder (slower).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout (the table goes to stderr).")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Keep the work folder here and write robustness.json + robustness.txt into it.")
def cli(mutants, cli_mutants, kill_trials, workers, seed, no_camera, full_disk_export, as_json, out) -> None:
    """Run the robustness campaign and print its figures; exit 1 when a requirement fails.

    \b
    It builds a tiny shapes data set with 1 % injected faults, trains 1 epoch on it, exports int8 + fp32 models,
    then: mutates those models (truncation, byte flips, flips in the flatbuffer tables, oversized dimensions,
    swapped tensor indices, wrong field values) and runs every mutant through inspect, benchmark and classify
    (counting clean rejections, contained child crashes, crashes and hangs); starts hostile sandbox children;
    offers unsafe Keras files; kills quantize and export with kill -9 at random moments; writes into a full and
    a read-only tmpfs; checks the image-folder and tub fault counts; and drives classify and steer with a fake
    camera that stalls, freezes, drops and disappears (worst stall-to-neutral time).

    \b
    Examples:
      edgecnn robustness                                   # short form, a few minutes on 2 cores
      edgecnn robustness --mutants 1000 --kill-trials 20 --json --out robustness_run
    """
    try:
        from edgecnn_robustness.report import format_table, passed  # lazy: optional
        from edgecnn_robustness.suite import run_suite  # lazy: optional
    except ModuleNotFoundError as exc:
        if exc.name != "edgecnn_robustness":
            raise  # the tool is there but something it needs is not: a real problem, keep the traceback
        raise EdgecnnError(INSTALL_HINT) from None

    def log(msg: str) -> None:
        click.echo(f"[robustness] {msg}", err=True)

    if out:
        report = run_suite(out, mutants, cli_mutants, kill_trials, seed, workers, not full_disk_export,
                           not no_camera, log)
    else:
        with tempfile.TemporaryDirectory(prefix="edgecnn-robustness-") as work:
            report = run_suite(work, mutants, cli_mutants, kill_trials, seed, workers, not full_disk_export,
                               not no_camera, log)
    table = format_table(report)
    if out:
        write_json(f"{out}/robustness.json", report)
        write_text(f"{out}/robustness.txt", table + "\n")
    if as_json:
        click.echo(table, err=True)
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        click.echo(table)
    if not passed(report):
        sys.exit(1)
