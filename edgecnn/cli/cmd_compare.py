"""``edgecnn compare``."""

from __future__ import annotations

import json

import click


@click.command("compare")
@click.argument("run", type=click.Path())
@click.argument("models", nargs=-1, type=click.Path())
@click.option("--data", default=None, help="Test data (default: the run's held-out test split).")
@click.option("--calibration", default=None,
              help="Calibration set used to build int8/int16x8 (calibration/NAME). Default: the set `edgecnn "
                   "calibrate RUN` built and the run remembers.")
@click.option("--precisions", default="fp32,fp16,dynamic,int8,int16x8", show_default=True,
              help="TFLite precisions to build from RUN.")
@click.option("--threads", default=1, show_default=True, help="CPU threads for latency.")
@click.option("--runs", default=200, show_default=True, help="Timed inferences per variant (after warm-up).")
@click.option("--warmup", default=20, show_default=True, help="Warm-up inferences, excluded.")
@click.option("--limit", default=500, show_default=True, help="At most this many test frames (0: all).")
@click.option("--closed-loop", default=0, show_default=True,
              help="Steering: also drive N simulated roads per variant; navigate: N planned routes through unseen "
                   "road networks (junction success, route completion, autonomy).")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Write report.json/.md/.csv and accuracy_latency.png here.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
def cli(run, models, data, calibration, precisions, threads, runs, warmup, limit, closed_loop, out, as_json):
    """Compare accuracy, latency, size and memory of RUN's float and quantized variants (and MODELS).

    One row per variant: the Keras model (the float reference) and TFLite fp32, fp16, dynamic, int8, int16x8
    built from RUN with its calibration set, plus any .tflite given. Every row runs on the same test frames;
    latency is measured one variant at a time, each in its own process.
    """
    from edgecnn.compare.compare import compare  # lazy: cli
    from edgecnn.compare.report import format_table, write_report  # lazy: cli
    from edgecnn.quantize.remembered import recall  # lazy: cli
    from edgecnn.tfimport import import_tensorflow  # lazy: cli

    if runs < 1 or warmup < 0 or limit < 0:
        raise click.BadParameter("--runs must be >= 1, --warmup and --limit >= 0")
    if calibration is None:
        remembered = recall(run)
        if remembered is not None:
            calibration = str(remembered)
            click.echo(f"calibration: {calibration} (remembered by {run})", err=True)
    import_tensorflow()
    bars = _Bars()
    try:
        report = compare(
            run, tuple(models), data=data, calibration=calibration,
            precisions=tuple(p.strip() for p in precisions.split(",") if p.strip()), threads=threads, runs=runs,
            warmup=warmup, limit=limit or None, variants_dir=f"{out}/variants" if out else None,
            closed_loop=closed_loop, log=lambda m: click.echo(m, err=True), progress=bars,
        )
    finally:
        bars.close()
    if out:
        files = write_report(report, out)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(format_table(report))
    if out:
        # with --json, stdout stays pure JSON for scripts
        click.echo(f"report: {files['md']}  plot: {files['plot']}", err=as_json)


class _Bars:
    """compare's progress as click progress bars on stderr, one per phase ("building" the variants, "measuring"
    them), the current variant shown beside the bar (on a terminal; elsewhere each phase's label once)."""

    def __init__(self) -> None:
        self._phase: str | None = None
        self._bar = None

    def __call__(self, phase: str, done: int, total: int, item: str) -> None:
        if phase != self._phase:
            self.close()
            self._phase = phase
            self._bar = click.progressbar(length=max(total, 1), label=f"{phase:<9}", show_pos=True,
                                          item_show_func=lambda v: v, file=click.get_text_stream("stderr"))
            self._bar.__enter__()
        bar = self._bar
        bar.current_item = item or None  # the variant about to start
        bar.update(done - bar.pos) if done > bar.pos else bar.render_progress()
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
        self._phase = None
