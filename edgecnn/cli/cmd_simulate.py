"""``edgecnn simulate``: let a steering model drive on unseen procedurally generated roads."""

from __future__ import annotations

import json
from dataclasses import replace

import click


@click.command("simulate")
@click.option("--model", "model", type=click.Path(dir_okay=False), help="Steering .tflite exported by edgecnn.")
@click.option(
    "--policy",
    type=click.Choice(["ideal", "zero"]),
    help="A reference driver instead of a model: ideal (pure pursuit, reads the true pose) or zero (straight).",
)
@click.option("--roads", default=20, show_default=True, type=click.IntRange(1, 10000), help="Roads to drive.")
@click.option("--seed", default=0, show_default=True, help="Road seed (roads never coincide with `data roads` ones).")
@click.option(
    "--latency-ms", default=0.0, show_default=True, type=click.FloatRange(0, 5000), help="Delay of every command."
)
@click.option("--road-length", default=30.0, show_default=True, type=click.FloatRange(2, 10000), help="Metres per road.")
@click.option("--hz", default=20.0, show_default=True, type=click.FloatRange(1, 1000), help="Control rate (frames/s).")
@click.option("--speed", default=1.5, show_default=True, type=click.FloatRange(0.1, 20), help="Car speed, m/s.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64), help="Model CPU threads.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON (autonomy, departures, ...).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write trajectories over the roads to this PNG.")
def cli(model, policy, roads, seed, latency_ms, road_length, hz, speed, threads, as_json, plot) -> None:
    """Closed-loop test: the model steers a simulated car and we count how often it leaves its lane.

    Each tick renders the camera view from the car's pose, runs the model, and applies its steering (after
    --latency-ms) through a kinematic bicycle model at constant speed. Leaving the lane is a departure: the car
    is re-centred, as a safety driver would, and charged 6 s of manual driving. Autonomy = 1 - departures x 6 s /
    elapsed time (NVIDIA PilotNet's metric). Offline error alone does not tell whether a model drives; this does.

    \b
    Examples:
      edgecnn simulate --model runs/steer/model_int8.tflite --roads 20
      edgecnn simulate --model m.tflite --latency-ms 150 --json
      edgecnn simulate --policy ideal --plot ideal.png
    """
    if (model is None) == (policy is None):
        raise click.UsageError("give either --model M.tflite or --policy ideal|zero")
    from edgecnn.sim.bicycle import CarParams  # lazy: cli
    from edgecnn.sim.simulate import PurePursuitPolicy, SimConfig, simulate, zero_policy  # lazy: cli

    if plot:
        from edgecnn.sim.plot import require_matplotlib  # lazy: cli

        require_matplotlib()  # fail before driving, not after
    car = replace(CarParams(), speed=speed)
    if model is not None:
        from edgecnn.runtime.model_policy import ModelPolicy  # lazy: cli

        drive = ModelPolicy(model, threads=threads)
        name = click.format_filename(model)
    elif policy == "ideal":
        drive, name = PurePursuitPolicy(car), "ideal controller (pure pursuit)"
    else:
        drive, name = zero_policy, "zero steering"
    config = SimConfig(roads=roads, seed=seed, road_length=road_length, control_hz=hz, latency_ms=latency_ms, car=car)

    def progress(r) -> None:
        click.echo(
            f"road {r.index + 1}/{roads}: {r.departures} departure(s), mean |offset| {r.mean_abs_offset * 100:.1f} cm",
            err=True,
        )

    result = simulate(drive, config, progress=progress)
    if plot:
        from edgecnn.sim.plot import plot_result  # lazy: cli

        plot_result(result, plot)
    d = result.to_dict()
    times = getattr(drive, "invoke_ms", None)
    if times:
        d["model_ms_p50"] = round(sorted(times)[len(times) // 2], 3)
    if as_json:
        click.echo(json.dumps(d))
        return
    click.echo(f"driver:           {name}")
    click.echo(f"roads:            {roads} x {road_length:g} m at {speed:g} m/s, {hz:g} Hz, latency {latency_ms:g} ms")
    click.echo(f"autonomy:         {d['autonomy']:.3f}  (1 - departures x {config.penalty_s:g} s / {d['time_s']:.0f} s)")
    click.echo(f"departures:       {d['departures']}")
    click.echo(f"in-lane time:     {_percent(d['in_lane_fraction'], d['departures'])}"
               + ("  (a departure re-centres the car, so it costs little lane time)" if d["departures"] else ""))
    click.echo(f"|offset| mean/max: {d['mean_abs_offset'] * 100:.1f} / {d['max_abs_offset'] * 100:.1f} cm")
    click.echo(f"distance:         {d['distance']:.0f} m")
    if d["mean_uncertainty"] is not None:
        click.echo(f"mean steering std: {d['mean_uncertainty']:.3f}")
    if "model_ms_p50" in d:
        click.echo(f"model time p50:   {d['model_ms_p50']:.2f} ms/frame")
    if plot:
        click.echo(f"plot:             {plot}")
    if model is not None and d["autonomy"] < 0.5:
        click.echo("hint: the simulator renders edgecnn's own roads (`edgecnn data roads`); a model trained on other "
                   "camera images, such as a Donkey Car tub, is not expected to drive here", err=True)


def _percent(fraction: float, departures: int) -> str:
    """A share as a percentage that never reads 100.0 % when something went wrong (1 tick in 10,000 is not 100 %)."""
    text = f"{fraction * 100:.1f} %"
    if departures and text == "100.0 %":
        text = f"{min(fraction * 100, 99.99):.2f} %"
    return text
