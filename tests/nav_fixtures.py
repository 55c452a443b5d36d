"""Test fixtures for route-conditioned (``navigate``) models: a tiny two-input gmm .tflite with a navigate contract,
built with TensorFlow in the test process, so device tests need no trained model.

The model is untrained except for one hand-set path: its steering mean is ``tanh`` of the lateral centre of mass
of the map channel it steers by (``route`` when routed, else ``roads``) over the rows ahead of the car, so a route
bending right gives a positive (right) steering and a straight one about zero: a device test can check that the
commands follow the map. The camera branch is a small random convolution with a tiny weight (the image input is
really read, it hardly moves the output).

Example::

    from nav_fixtures import tiny_navigate_tflite
    path = tiny_navigate_tflite(tmp_path)               # float model, routed
    path8 = tiny_navigate_tflite(tmp_path, int8=True)    # full-integer int8
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgecnn.contract import Contract, map_entry
from edgecnn.navmap import Edge, MapSpec, PoseNoise, RoadNetwork, Route, rasterise

IMAGE_SIZE = (24, 32)  # (height, width) of the tiny model's camera input
COMPONENTS = 3
GAIN = 4.0  # tanh gain on the map's lateral centre of mass


def navigate_contract(routed: bool = True, spec: MapSpec | None = None) -> Contract:
    """The navigate contract of the tiny model (image 24x32 RGB 0..1, gmm K=3, map 64x64 at 8 m)."""
    spec = spec or MapSpec(channels=("roads", "route") if routed else ("roads",))
    h, w = IMAGE_SIZE
    return Contract(task="navigate", input_height=h, input_width=w, head="gmm", components=COMPONENTS,
                    arch="tiny-navigate", map=map_entry(spec, PoseNoise()))


def lateral_weights(spec: MapSpec) -> np.ndarray:
    """``float32 (S, S, C)``: weight of each map pixel in the steering mean: its lateral position (-1 at the left
    edge, +1 at the right) over the rows ahead of the car, on the steering channel only, normalised by the
    number of pixels ahead."""
    s = spec.size
    row0, col0 = spec.car_pixel
    lateral = (np.arange(s) + 0.5 - col0) / (s / 2)
    w = np.zeros((s, s, len(spec.channels)), np.float32)
    ch = spec.channels.index("route" if spec.routed else "roads")
    ahead = int(row0)
    w[:ahead, :, ch] = lateral[None, :] / (ahead * s) * 8.0  # a full-lane route at the edge ~ 1
    return w


def build_keras(contract: Contract, seed: int = 0):
    """The tiny two-input Keras model (inputs named ``image`` and ``map``, output 3K: logits, means, log-sigmas)."""
    import keras  # lazy: keras

    keras.utils.set_random_seed(seed)
    spec = contract.map_spec
    h, w = contract.input_size
    image = keras.Input((h, w, 3), name="image")
    m = keras.Input((spec.size, spec.size, len(spec.channels)), name="map")
    x = keras.layers.Conv2D(2, 3, strides=4, activation="relu")(image)
    x = keras.layers.GlobalAveragePooling2D()(x)
    lat = keras.layers.Dense(1, use_bias=False, name="lateral")(keras.layers.Flatten()(m))
    feats = keras.layers.Concatenate()([x, lat])
    logits = keras.layers.Dense(COMPONENTS, name="logits")(feats)
    means = keras.layers.Dense(COMPONENTS, activation="tanh", name="means")(feats)
    log_sigmas = keras.layers.Dense(COMPONENTS, name="log_sigmas")(feats)
    out = keras.layers.Concatenate(name="mixture")([logits, means, log_sigmas])
    model = keras.Model([image, m], out, name="tiny_navigate")
    model.get_layer("lateral").set_weights([lateral_weights(spec).reshape(-1, 1)])
    k = COMPONENTS
    model.get_layer("logits").set_weights([np.zeros((3, k), np.float32), np.zeros(k, np.float32)])
    mk = np.zeros((3, k), np.float32)
    mk[:2] = 0.01  # the camera: read, barely used
    mk[2] = GAIN
    model.get_layer("means").set_weights([mk, np.zeros(k, np.float32)])
    model.get_layer("log_sigmas").set_weights([np.zeros((3, k), np.float32),
                                               np.full(k, math.log(0.1), np.float32)])
    return model


def sample_network() -> tuple[RoadNetwork, Route, Route]:
    """A T-junction 10 m ahead of the start (n0 (0,0) east to n1 (10,0); n2 north, n3 south) with the driving
    lines of the left (n0-n1-n2) and right (n0-n1-n3) routes; lane half-width 0.42 m."""
    hw = 0.42

    def line(a, b):
        a, b = np.asarray(a, float), np.asarray(b, float)
        n = int(np.linalg.norm(b - a) / 0.05) + 1
        return a + (b - a) * np.linspace(0, 1, n)[:, None]

    nodes = {"n0": (0.0, 0.0), "n1": (10.0, 0.0), "n2": (10.0, 10.0), "n3": (10.0, -10.0)}
    edges = (Edge("e0", "n0", "n1", line((0, 0), (10, 0)), hw), Edge("e1", "n1", "n2", line((10, 0), (10, 10)), hw),
             Edge("e2", "n1", "n3", line((10, 0), (10, -10)), hw))
    net = RoadNetwork(nodes, edges)
    a = np.linspace(0, math.pi / 2, 24)
    r_left, r_right = 3 * hw, hw  # into the far lane turning left, the near one turning right
    left_arc = np.c_[10 - 2 * hw + r_left * np.sin(a), -hw + r_left * (1 - np.cos(a))]
    right_arc = np.c_[10 - 2 * hw + r_right * np.sin(a), -hw - r_right * (1 - np.cos(a))]
    left = np.concatenate([line((0, -hw), (10 - 2 * hw, -hw))[:-1], left_arc[:-1], line((10 + hw, 2 * hw), (10 + hw, 10))])
    right = np.concatenate([line((0, -hw), (10 - 2 * hw, -hw))[:-1], right_arc[:-1],
                            line((10 - hw, -2 * hw), (10 - hw, -10))])
    jl = {"node": "n1", "kind": "T", "s": 10.0, "branch": "left", "options": ["left", "right"]}
    jr = dict(jl, branch="right")
    return net, Route("n0", "n2", ("n0", "n1", "n2"), left, (jl,)), Route("n0", "n3", ("n0", "n1", "n3"), right, (jr,))


def representative(contract: Contract, n: int = 24, seed: int = 0) -> dict[str, np.ndarray]:
    """A calibration set for the tiny model: random camera frames and maps of :func:`sample_network` along both
    routes (``{"image": float32 N x h x w x 3, "map": float32 N x S x S x C}``, normalised)."""
    rng = np.random.default_rng(seed)
    h, w = contract.input_size
    spec = contract.map_spec
    net, left, right = sample_network()
    maps = []
    for i in range(n):
        route = left if i % 2 else right
        x = 4.0 + 6.0 * i / n
        maps.append(rasterise(net, route, (x, -0.42, 0.0), spec).astype(np.float32) / 255.0)
    images = rng.integers(0, 256, (n, h, w, 3)).astype(np.float32) / 255.0
    return {"image": images, "map": np.stack(maps)}


def tiny_navigate_tflite(tmp_path: str | Path, routed: bool = True, int8: bool = False) -> Path:
    """Path of a small untrained two-input gmm .tflite (``image`` 24x32x3 and ``map`` 64x64xC, float or full-int8)
    with its navigate contract embedded by edgecnn's own converter and metadata writer. Built once per
    ``tmp_path`` and variant (a few seconds: it imports TensorFlow)."""
    from edgecnn.quantize.convert import convert  # lazy: tensorflow
    from edgecnn.quantize.pipeline import contract_with_quantization  # lazy: tensorflow
    from edgecnn.runtime.inspect import read_model_info
    from edgecnn.runtime.metadata import embed_contract, read_contract

    path = Path(tmp_path) / f"tiny_navigate_{'routed' if routed else 'unrouted'}_{'int8' if int8 else 'fp32'}.tflite"
    if path.is_file():
        return path
    contract = navigate_contract(routed)
    model = build_keras(contract)
    precision = "int8" if int8 else "fp32"
    data = convert(model, precision, representative(contract) if int8 else None)
    contract = contract_with_quantization(contract, read_model_info(data), None)
    out = embed_contract(data, contract)
    assert read_contract(out) == contract
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out)
    return path
