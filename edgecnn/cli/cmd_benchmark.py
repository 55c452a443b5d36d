"""``edgecnn benchmark``: latency, throughput and memory of a .tflite on this machine (no TensorFlow)."""

from __future__ import annotations

import json

import click


@click.command("benchmark")
@click.argument("model", type=click.Path())
@click.option("--threads", default=None, type=click.IntRange(min=1), help="CPU threads (default: runtime's choice).")
@click.option("--runs", default=100, show_default=True, type=click.IntRange(min=1), help="Steady-state inferences.")
@click.option("--warmup", default=10, show_default=True, type=click.IntRange(min=0),
              help="Inferences after the first one, excluded from the statistics.")
@click.option("--delegate", default="xnnpack", show_default=True, type=click.Choice(["xnnpack", "none", "edgetpu"]),
              help="Accelerator (edgetpu needs libedgetpu.so.1 and a Coral device).")
@click.option("--input", "inputs", multiple=True, type=click.Path(dir_okay=False),
              help="Use this input instead of random values (.npy real values, or an image); once per model input.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the report.")
@click.option("--memory-limit", default=2048, show_default=True, type=click.IntRange(min=64),
              help="Address-space limit for the worker process, MiB.")
@click.option("--timeout", default=600.0, show_default=True, type=click.FloatRange(min=1), help="Seconds.")
@click.option("--compare-to", "compare_to", default=None, type=click.Path(dir_okay=False),
              help="The float twin of MODEL (same network, fp32): measured the same way; an int8 MODEL that is "
                   "not faster is flagged.")
def cli(model, threads, runs, warmup, delegate, inputs, as_json, memory_limit, timeout, compare_to) -> None:
    """Measure a .tflite model like TensorFlow's benchmark_model: init, first inference, warm-up, steady state.

    \b
    Example:
      edgecnn benchmark shapes_int8.tflite --threads 1 --runs 500
      edgecnn benchmark mobilenet_quant.tflite --input parrot.jpg --json
      edgecnn benchmark model_int8.tflite --threads 1 --compare-to model_fp32.tflite

    The report says how many nodes the delegate (XNNPACK) took and which ops stayed on the reference CPU kernels,
    and warns on uint8 I/O and per-tensor quantization. The model runs in a separate, resource-limited process:
    a broken or hostile file gives an error, not a crash.
    """
    from edgecnn.runtime.benchmark import benchmark_model  # lazy: cli

    click.echo(f"benchmarking {model} ({warmup} warm-up + {runs} runs)...", err=True)
    result = benchmark_model(model, threads=threads, runs=runs, warmup=warmup, delegate=delegate,
                             inputs=list(inputs) or None, memory_mb=memory_limit, timeout_s=timeout,
                             compare_to=compare_to)
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else result.format())
