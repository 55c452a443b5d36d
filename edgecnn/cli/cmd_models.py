"""``edgecnn models``."""

from __future__ import annotations

import json

import click

from edgecnn.models.registry import count_macs, create_model, list_models
from edgecnn.sizes import format_size, parse_size
from edgecnn.tfimport import import_tensorflow


@click.command("models")
@click.option("--img-size", default="64", show_default=True, help="Input N or WIDTHxHEIGHT for the counts.")
@click.option("--classes", default=5, show_default=True, help="Output classes for classifiers.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cli(img_size: str, classes: int, as_json: bool) -> None:
    """List the registered architectures with parameters and multiply-accumulates."""
    w, h = parse_size(img_size)
    import_tensorflow()
    rows = []
    for spec in list_models():
        outputs = classes if "classify" in spec.tasks else 1
        model = create_model(spec.name, (h, w, 3), outputs)
        rows.append({"name": spec.name, "tasks": list(spec.tasks), "params": model.count_params(),
                     "macs": count_macs(model), "summary": spec.summary})
    if as_json:
        click.echo(json.dumps({"input": [h, w, 3], "models": rows}, indent=2))
        return
    click.echo(f"{'name':<10} {'task':<9} {'params':>11} {'MACs':>13}  (input {format_size(w, h)}x3)")
    for r in rows:
        click.echo(f"{r['name']:<10} {','.join(r['tasks']):<9} {r['params']:>11,} {r['macs']:>13,}  {r['summary']}")
