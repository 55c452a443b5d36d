"""``edgecnn simulate``: let a steering model drive on unseen procedurally generated roads."""

from __future__ import annotations

import json
from dataclasses import replace

import click
from click.core import ParameterSource


@click.command("simulate")
@click.option("--model", "model", type=click.Path(dir_okay=False), help="Steering or navigate .tflite exported by edgecnn.")
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
@click.option(
    "--networks", is_flag=True,
    help="Drive planned routes through road networks (junctions) instead of plain roads; automatic for a "
         "navigate model. An image-only model drives the same routes (it sees no map).",
)
@click.option(
    "--routes", type=click.IntRange(1, 10000),
    help="Routes to drive (one per network) [default: as many as give >= 40 junctions].",
)
@click.option(
    "--pose-noise", "pose_noise", type=click.FloatRange(0, 100),
    help="Pose errors as a multiple of the model's contract pose noise (0 = perfect position and heading) "
         "[default: 1].",
)
@click.option(
    "--pose-delay-ms", "pose_delay_ms", type=click.FloatRange(0, 10000),
    help="Age of the pose the map is drawn at, ms [default: the model's contract, 100].",
)
@click.option(
    "--network-kind", "network_kind", type=click.Choice(["T", "cross", "fork", "curve"]),
    help="Only networks of this kind [default: the generator's mix].",
)
@click.option(
    "--nav-steering", "nav_steering", type=click.Choice(["auto", "mean", "branch"]), default="auto", show_default=True,
    help="How a navigate model's mixture becomes one command: mean (as `steer` does), branch (the heavier "
         "mode's side), auto = mean when routed, branch when unrouted.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON (autonomy, departures, ...).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write trajectories over the roads to this PNG.")
def cli(model, policy, roads, seed, latency_ms, road_length, hz, speed, threads, networks, routes, pose_noise,
        pose_delay_ms, network_kind, nav_steering, as_json, plot) -> None:
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
      edgecnn simulate --model runs/nav/model_int8.tflite --json          # a navigate model: routes
      edgecnn simulate --model nav.tflite --pose-noise 2 --pose-delay-ms 300 --plot routes.png

    \b
    Route models (task navigate, or --networks): each tick the map is drawn
    around the car's ESTIMATED pose (noise, delay and rate from the model's
    contract, errors scaled by --pose-noise) and the model steers from frame +
    map along a planned route on an unseen network. A junction succeeds when
    the car leaves it on the route's branch without a departure; a route is
    completed when the car reaches the goal with every junction taken right.
    JSON: junctions, junction_success, route_completion, autonomy, departures,
    per_route.
    """
    if (model is None) == (policy is None):
        raise click.UsageError("give either --model M.tflite or --policy ideal|zero")
    from edgecnn.sim.bicycle import CarParams  # lazy: cli
    from edgecnn.sim.simulate import (  # lazy: cli
        PurePursuitPolicy,
        SimConfig,
        simulate,
        zero_policy,
    )

    if plot:
        from edgecnn.sim.plot import require_matplotlib  # lazy: cli

        require_matplotlib()  # fail before driving, not after
    car = replace(CarParams(), speed=speed)
    drive = None
    if model is not None:
        from edgecnn.runtime.model_policy import load_policy  # lazy: cli

        drive = load_policy(model, threads=threads, nav_steering=nav_steering)
        networks = networks or drive.uses_map
    network_options = {"--routes": routes, "--pose-noise": pose_noise, "--pose-delay-ms": pose_delay_ms,
                       "--network-kind": network_kind}
    ctx = click.get_current_context()
    if networks:
        plain = [f"--{n.replace('_', '-')}" for n in ("roads", "road_length")
                 if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE]
        if plain:
            verb = "applies" if len(plain) == 1 else "apply"
            raise click.UsageError(f"{' and '.join(plain)} {verb} to plain roads; with road networks use --routes")
        _simulate_networks(drive, model, policy, car, seed=seed, latency_ms=latency_ms, hz=hz, routes=routes,
                           pose_noise=pose_noise, pose_delay_ms=pose_delay_ms, kind=network_kind,
                           as_json=as_json, plot=plot)
        return
    given = [k for k, v in network_options.items() if v is not None]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise click.UsageError(f"{', '.join(given)} {verb} to road networks: add --networks (or pass a navigate model)")
    if model is not None:
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
    if _print_json(d, drive, as_json):
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


def _simulate_networks(drive, model, policy, car, *, seed, latency_ms, hz, routes, pose_noise, pose_delay_ms, kind,
                       as_json, plot) -> None:
    """The road-network half of the command: planned routes, maps at the estimated pose, junction metrics."""
    from edgecnn.errors import EdgecnnError  # lazy: cli
    from edgecnn.navmap import PoseNoise  # lazy: cli

    try:
        from edgecnn.sim.navigate import NavConfig, simulate_networks  # lazy: cli
    except ModuleNotFoundError as exc:  # an install made before networkx joined the dependencies
        if exc.name != "networkx":
            raise
        raise EdgecnnError("road networks need networkx, which this install lacks: pip install networkx") from None
    from edgecnn.sim.simulate import PurePursuitPolicy, zero_policy  # lazy: cli

    if drive is not None:
        name = click.format_filename(model)
        if drive.uses_map:
            name += f" (navigate, {'routed' if drive.routed else 'unrouted: roads only'}, steering = {drive.steering})"
        else:
            name += " (image only: it sees no map)"
    elif policy == "ideal":
        drive, name = PurePursuitPolicy(car), "ideal route follower (pure pursuit on the route, reads the true pose)"
    else:
        drive, name = zero_policy, "zero steering"
    scale = 1.0 if pose_noise is None else pose_noise
    noise = getattr(drive, "pose_noise", None) or PoseNoise()
    noise = noise.scaled(scale)
    if pose_delay_ms is not None:
        noise = replace(noise, delay_ms=pose_delay_ms)
    config = NavConfig(routes=routes, seed=seed, kind=kind, control_hz=hz, latency_ms=latency_ms, car=car,
                       pose_noise=noise)

    def progress(r, total: int) -> None:
        ok = sum(j.ok for j in r.junctions)
        failed = ", ".join(f"J{j.number} {j.kind} {j.branch}: {'departure' if j.reached else 'not reached'}"
                           for j in r.junctions if not j.ok)
        click.echo(
            f"route {r.index + 1}/{total}: junctions {ok}/{len(r.junctions)} ok, {r.departures} departure(s), "
            f"{'completed' if r.completed else 'NOT completed'}" + (f"  ({failed})" if failed else ""),
            err=True,
        )

    result = simulate_networks(drive, config, progress=progress)
    if plot:
        from edgecnn.sim.plot import plot_nav_result  # lazy: cli

        plot_nav_result(result, plot)
    d = result.to_dict()
    d["driver"] = name
    d["nav_steering"] = getattr(drive, "steering", None)
    d["pose_noise_scale"] = scale
    if _print_json(d, drive, as_json):
        return
    ok = sum(j.ok for r in result.per_route for j in r.junctions)
    done = sum(r.completed for r in result.per_route)
    kinds = ", ".join(f"{k} {v['success']:.2f} of {v['junctions']}" for k, v in d["junctions_by_kind"].items())
    click.echo(f"driver:           {name}")
    click.echo(f"routes:           {d['routes']} on unseen networks (seed {seed}), {car.speed:g} m/s, {hz:g} Hz, "
               f"latency {latency_ms:g} ms")
    click.echo(f"pose:             {scale:g} x noise ({noise.position_m:g} m, {noise.heading_deg:g} deg), delay "
               f"{noise.delay_ms:g} ms, {noise.rate_hz:g} Hz")
    success = "n/a" if d["junction_success"] is None else f"{d['junction_success']:.3f}"
    click.echo(f"junctions:        {d['junctions']}, success {success} ({ok}/{d['junctions']})"
               + (f"  [{kinds}]" if kinds else ""))
    click.echo(f"route completion: {d['route_completion']:.3f} ({done}/{d['routes']})")
    click.echo(f"autonomy:         {d['autonomy']:.3f}  (1 - departures x {config.penalty_s:g} s / {d['time_s']:.0f} s)")
    click.echo(f"departures:       {d['departures']}")
    click.echo(f"|offset| mean/max: {d['mean_abs_offset'] * 100:.1f} / {d['max_abs_offset'] * 100:.1f} cm")
    click.echo(f"distance:         {d['distance']:.0f} m")
    if "model_ms_p50" in d:
        click.echo(f"model time p50:   {d['model_ms_p50']:.2f} ms/frame")
    if plot:
        click.echo(f"plot:             {plot}")


def _print_json(d: dict, drive, as_json: bool) -> bool:
    """Add the model's median per-frame time (``model_ms_p50``, when the driver measured one) to ``d``; print
    ``d`` as one JSON line when ``as_json``. Returns ``as_json``."""
    times = getattr(drive, "invoke_ms", None)
    if times:
        d["model_ms_p50"] = round(sorted(times)[len(times) // 2], 3)
    if as_json:
        click.echo(json.dumps(d))
    return as_json
