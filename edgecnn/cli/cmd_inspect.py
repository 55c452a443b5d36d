"""``edgecnn inspect``: what is inside a .tflite (no TensorFlow; parsed in a sandboxed child process)."""

from __future__ import annotations

import json

import click


@click.command("inspect")
@click.argument("model", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the report.")
@click.option("--memory-limit", default=2048, show_default=True, type=click.IntRange(min=64),
              help="Address-space limit for the worker process, MiB.")
@click.option("--timeout", default=120.0, show_default=True, type=click.FloatRange(min=1), help="Seconds.")
def cli(model: str, as_json: bool, memory_limit: int, timeout: float) -> None:
    """Show a .tflite model's inputs/outputs, ops, size, parameters, MACs, precision and contract.

    MODEL is a .tflite file or a bundle folder (its model_int8.tflite). A route-conditioned (navigate) model shows
    both inputs (image and map) and what its map is: size, channels and their meaning, extent, where the car
    sits, and the pose noise it was trained with.

    \b
    Example:
      edgecnn inspect shapes_int8.tflite
      edgecnn inspect firmware_models/shapes_compact
      edgecnn inspect mobilenet_quant.tflite --json | jq .quantization

    Exits non-zero when this machine's runtime cannot load the model (the report still shows why).
    """
    from edgecnn.errors import ModelError  # lazy: cli
    from edgecnn.runtime.inspect import inspect_model  # lazy: cli

    report = inspect_model(model, memory_mb=memory_limit, timeout_s=timeout)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format())
    if not report.loads:
        raise ModelError(f"{model}: {report.load_error}")
