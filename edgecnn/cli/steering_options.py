"""The options ``steer`` and ``replay`` share for reading a steering model that has no edgecnn contract: a
donkeycar pilot (``--pilot``) or a third-party model (``--input-range``, ``--steering-output``,
``--steering-range``, ``--bgr``), and the :class:`~edgecnn.runtime.pilots.SteeringOptions` they make."""

from __future__ import annotations

from collections.abc import Callable

import click

_OPTIONS = (
    click.option("--pilot", default=None, type=click.Choice(["donkey-linear", "donkey-categorical"]),
                 help="Read a model without an edgecnn contract as this donkeycar pilot (default: recognised by its "
                      "input img_in and its outputs)."),
    click.option("--input-range", default=None, type=click.Choice(["0,1", "-1,1", "0,255"]),
                 help="Third-party steering models (no edgecnn contract, not a donkeycar pilot): their pixel range."),
    click.option("--steering-output", default=None,
                 help="Third-party models: which output is steering (signature name, tensor name or index; "
                      "default 0)."),
    click.option("--steering-range", default="-1,1", show_default=True,
                 help="Third-party models: the steering output at full left and full right (1,-1 if positive is "
                      "left); mapped onto [-1, 1], positive = right."),
    click.option("--bgr", is_flag=True, help="Third-party models: trained on BGR frames (default RGB)."),
)


def third_party_options(f: Callable) -> Callable:
    """Decorator adding ``--pilot``, ``--input-range``, ``--steering-output``, ``--steering-range`` and ``--bgr``
    (in that order in ``--help``)."""
    for option in reversed(_OPTIONS):
        f = option(f)
    return f


def steering_options(input_range: str | None, steering_output: str | None, steering_range: str,
                     bgr: bool):
    """What the user said about a third-party model, or None when nothing (``--input-range`` unset); UsageError
    when ``--steering-output`` or ``--bgr`` come without ``--input-range``."""
    from edgecnn.runtime.pilots import (  # lazy: cli
        SteeringOptions,
        parse_steering_range,
    )

    if input_range is not None:
        return SteeringOptions(input_range, steering_output, parse_steering_range(steering_range),
                               "BGR" if bgr else "RGB")
    if steering_output is not None or bgr:
        raise click.UsageError("--steering-output and --bgr describe a third-party model: give --input-range too")
    return None
