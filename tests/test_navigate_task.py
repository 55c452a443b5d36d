"""`--task navigate`: the two-input navnet trained on a tiny synthetic networks data set (the `data roads
--networks` layout, tests/nav_synth.py), its metrics and contract, the calibration set with maps, and the int8
model with both inputs found by name. Tiny sizes: 66x66 frames, 16x16 maps, 1 epoch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from nav_synth import make_nav_data

from edgecnn.errors import DataError, OptionError
from edgecnn.train.config import TrainConfig, resolve_config

MAP_SIZE = 16


@pytest.fixture(scope="module")
def nav_data(tmp_path_factory) -> Path:
    return make_nav_data(tmp_path_factory.mktemp("nav") / "data", frames=120, map_size=MAP_SIZE)


@pytest.fixture(scope="module")
def branch_data(tmp_path_factory) -> Path:
    return make_nav_data(tmp_path_factory.mktemp("navb") / "data", frames=120, map_size=MAP_SIZE, branch_columns=True)


def _train(data: Path, out: Path, routed: bool = True, junction_labels: str = "auto"):
    from edgecnn.train.trainer import train

    cfg = TrainConfig(data=str(data), out=str(out), task="navigate", img_size=(66, 66), epochs=1, batch=16,
                      routed=routed, junction_labels=junction_labels)
    return train(cfg, log=lambda m: None, verbose=0)


@pytest.fixture(scope="module")
def routed_run(nav_data, tmp_path_factory) -> Path:
    return _train(nav_data, tmp_path_factory.mktemp("runs") / "routed").run_dir


def test_train_writes_metrics_and_a_map_contract(routed_run):
    m = json.loads((routed_run / "metrics.json").read_text())
    for key in ("mae", "nll", "coverage", "coverage_ideal", "junctions"):
        assert key in m, key
    assert set(m["coverage"]) == {"1", "2", "3"} and all(0 <= v <= 1 for v in m["coverage"].values())
    assert 0.4 < m["sigma_scale"] < 2.1 and m["val_nll_after"] <= m["val_nll_before"] + 1e-9
    assert m["coverage_ideal"]["2"] == pytest.approx(0.954, abs=1e-3)
    assert {"route_mode_share", "junction_frames", "road_one_mode_share"} <= set(m["junctions"])
    c = json.loads((routed_run / "contract.json").read_text())
    assert c["task"] == "navigate" and c["head"] == "gmm" and c["arch"] == "navnet"
    assert c["map"]["routed"] is True and c["map"]["input"] == "map"
    assert c["map"]["spec"]["channels"] == ["roads", "route"] and c["map"]["spec"]["size"] == MAP_SIZE
    assert "position_m" in c["map"]["pose_noise"]
    split = json.loads((routed_run / "split.json").read_text())
    row = split["splits"]["train"][0]
    assert row[2].endswith(".png") and row[3] in ("", "T")


def test_metrics_are_those_of_the_saved_calibrated_model(routed_run):
    """metrics.json is measured on model.keras as saved (after the sigma scale), not on a stale trace."""
    import keras

    from edgecnn.contract import Contract
    from edgecnn.train.tasks import get_task

    cfg = json.loads((routed_run / "config.json").read_text())
    cfg["img_size"] = tuple(cfg["img_size"])
    config = resolve_config(TrainConfig(**cfg))
    task = get_task("navigate")
    data = task.load_data(config)
    model = keras.saving.load_model(routed_run / "model.keras", compile=False)
    again = task.evaluate(model, data, Contract.load(routed_run / "contract.json"), config)
    m = json.loads((routed_run / "metrics.json").read_text())
    assert again["nll"] == pytest.approx(m["nll"], abs=1e-5) and again["coverage"] == m["coverage"]


def test_unrouted_reads_the_roads_channel_only(nav_data, tmp_path):
    import keras

    r = _train(nav_data, tmp_path / "unrouted", routed=False)
    c = json.loads((r.run_dir / "contract.json").read_text())
    assert c["map"]["routed"] is False and c["map"]["spec"]["channels"] == ["roads"]
    model = keras.saving.load_model(r.run_dir / "model.keras", compile=False)
    assert [t.name for t in model.inputs] == ["image", "map"]
    assert tuple(model.inputs[1].shape[1:]) == (MAP_SIZE, MAP_SIZE, 1)
    assert "t_two_sided_share" in r.metrics["junctions"] and "t_decision_share" in r.metrics["junctions"]
    assert r.metrics["junctions"]["decision_window_m"] == 0.5


def test_branch_targets_give_every_branch_on_the_approach_only(branch_data):
    from edgecnn.data.navigation import MAX_BRANCHES, branch_targets, read_navigation

    samples = read_navigation(branch_data)[0]
    y, spread = branch_targets(samples, every_branch=True)
    assert y.shape == (120, 2 * MAX_BRANCHES) and y.dtype == np.float32
    np.testing.assert_allclose(y[:, MAX_BRANCHES:].sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(y[:, 0], np.float32([s.steering for s in samples]))  # column 0: own label
    approach = [i for i, s in enumerate(samples) if s.junction.kind and s.junction.to_turn >= 0]
    assert spread == len(approach) == 30  # 6 junction blocks x 5 frames before the turn-in point
    for i, s in enumerate(samples):
        if i in approach:
            other = 0.5 if s.junction.branch == "left" else -0.5
            assert y[i, 1] == other and list(y[i, MAX_BRANCHES : MAX_BRANCHES + 2]) == [0.5, 0.5]
        else:  # plain road and past the turn-in point: the route's label only
            assert list(y[i, MAX_BRANCHES:]) == [1.0, 0.0, 0.0] and not y[i, 1:MAX_BRANCHES].any()
    route, none = branch_targets(samples, every_branch=False)
    assert none == 0 and list(route[:, MAX_BRANCHES]) == [1.0] * 120


def test_fit_sigma_scale_reads_weighted_labels():
    from edgecnn.mixture import nll
    from edgecnn.train.tasks.navigate import fit_sigma_scale

    raw = np.array([[0.0, 0.0, -0.5, 0.5, np.log(0.1), np.log(0.1)]] * 2)
    y = np.array([[-0.5, 0.5, 0, 0.5, 0.5, 0], [0.0, 0, 0, 1.0, 0, 0]])
    _, before, _ = fit_sigma_scale(raw, y)
    want = np.mean([0.5 * nll(raw[0], -0.5) + 0.5 * nll(raw[0], 0.5), nll(raw[1], 0.0)])
    assert before == pytest.approx(want, abs=1e-9)
    assert fit_sigma_scale(raw, np.array([-0.5, 0.0]))[1] == pytest.approx(np.mean([nll(raw[0], -0.5),
                                                                                    nll(raw[1], 0.0)]))


def test_unrouted_learns_every_branch_where_the_data_has_them(branch_data, tmp_path):
    r = _train(branch_data, tmp_path / "branches", routed=False)
    assert r.metrics["junction_labels"] == "branches" and r.metrics["branch_labelled_train_frames"] > 0
    assert "junction labels: every branch" in r.data_summary
    asked = _train(branch_data, tmp_path / "route", routed=False, junction_labels="route")
    assert asked.metrics["junction_labels"] == "route" and asked.metrics["branch_labelled_train_frames"] == 0
    assert asked.metrics["nll"] != r.metrics["nll"]  # the labels reached the loss


def test_junction_label_errors(nav_data, tmp_path):
    from edgecnn.train.tasks import get_task

    with pytest.raises(OptionError, match="add --unrouted"):
        resolve_config(TrainConfig(data="d", out="o", task="navigate", junction_labels="branches"))
    with pytest.raises(OptionError, match="--task navigate only"):
        resolve_config(TrainConfig(data="d", out="o", task="steer", junction_labels="route"))
    with pytest.raises(OptionError, match="must be one of"):
        resolve_config(TrainConfig(data="d", out="o", task="navigate", junction_labels="all"))
    cfg = resolve_config(TrainConfig(data=str(nav_data), out=str(tmp_path / "o"), task="navigate", routed=False,
                                     junction_labels="branches"))
    with pytest.raises(DataError, match="no branch_steering column"):
        get_task("navigate").load_data(cfg)
    auto = resolve_config(TrainConfig(data=str(nav_data), out=str(tmp_path / "o"), task="navigate", routed=False))
    assert get_task("navigate").load_data(auto).junction_labels == "route"  # older data: the route's label


def test_dropout_option_reaches_navnet_and_is_checked():
    from edgecnn.models.registry import create_model
    from edgecnn.train.tasks import get_task
    from edgecnn.train.tasks.navigate import DROPOUT

    task = get_task("navigate")
    assert task.model_kwargs(TrainConfig(data="d", out="o", task="navigate"))["dropout"] == DROPOUT
    kwargs = task.model_kwargs(resolve_config(TrainConfig(data="d", out="o", task="navigate", dropout=0.2)))
    assert kwargs["dropout"] == 0.2
    model = create_model("navnet", (66, 66, 3), 9, map_shape=(MAP_SIZE, MAP_SIZE, 1), **kwargs)
    assert [layer.rate for layer in model.layers if layer.name.startswith("dropout")] == [0.2, 0.2]
    with pytest.raises(OptionError, match=r"\[0, 1\)"):
        resolve_config(TrainConfig(data="d", out="o", task="navigate", dropout=1.0))
    with pytest.raises(OptionError, match="--task navigate only"):
        resolve_config(TrainConfig(data="d", out="o", task="steer", dropout=0.2))


def test_calibration_stores_both_inputs(routed_run, tmp_path):
    from edgecnn.quantize import calibration as cal
    from edgecnn.train.run import load_run

    path, _ = cal.build(cal.source_from_run(routed_run), tmp_path / "cal", count=30)
    calib = cal.load_calibration(path)
    assert calib.maps is not None and calib.maps.shape == (30, MAP_SIZE, MAP_SIZE, 2) and calib.maps.dtype == np.uint8
    assert set(np.unique(calib.maps)) <= {0, 255} and calib.maps[..., 1].any()  # the route channel is there
    assert calib.manifest["inputs"]["map"]["channels"] == ["roads", "route"]
    inputs = cal.model_inputs(calib, load_run(routed_run).contract)
    assert set(inputs) == {"image", "map"} and inputs["map"].max() == 1.0
    (path / "maps.npy").write_bytes((path / "maps.npy").read_bytes()[:-4] + b"\0\0\0\1")
    with pytest.raises(DataError, match="maps.npy"):
        cal.load_calibration(path)


def test_int8_model_has_two_named_inputs(routed_run, tmp_path):
    from edgecnn.quantize import calibration as cal
    from edgecnn.quantize.pipeline import quantize_run
    from edgecnn.runtime.evaluate import bind_inputs, predict, tensor_input_name
    from edgecnn.runtime.metadata import read_contract

    path, _ = cal.build(cal.source_from_run(routed_run), tmp_path / "cal", count=30)
    r = quantize_run(routed_run, path, "int8", tmp_path / "nav_int8.tflite")
    info = r.info
    assert info.precision == "int8"
    assert sorted(tensor_input_name(t.name) for t in info.inputs) == ["image", "map"]
    by = {tensor_input_name(t.name): t for t in info.inputs}
    assert by["map"].shape == (1, MAP_SIZE, MAP_SIZE, 2) and by["image"].shape == (1, 66, 66, 3)
    # a 0/255 raster / 255 quantizes exactly: 0 -> the lowest step, 1 -> the highest
    assert by["map"].scale == pytest.approx(1 / 255, rel=1e-3) and by["map"].zero_point == -128
    data = (tmp_path / "nav_int8.tflite").read_bytes()
    contract = read_contract(data)
    assert contract.task == "navigate" and contract.map["spec"]["channels"] == ["roads", "route"]
    assert set(contract.extra["inputs"]) == {"image", "map"}
    calib = cal.load_calibration(path)
    inputs = cal.model_inputs(calib, contract, limit=4)
    out = predict(data, inputs)
    assert out.shape == (4, 9) and np.isfinite(out).all()
    swapped = predict(data, {"map": inputs["map"], "image": inputs["image"]})  # by name, not by order
    assert np.array_equal(out, swapped)
    from edgecnn.export.bundle import c_array_step
    from edgecnn.export.edgetpu import readiness

    report, _ = readiness(data, compile=False)
    assert report.static_batch1 and report.full_integer and not report.unsupported_ops
    micro = c_array_step(data, inputs, lambda m: None).micro
    assert micro.error is None and micro.samples == 4 and micro.max_abs_diff <= 3  # runs in tflite-micro
    from edgecnn.runtime.adapters import TensorSpec

    specs = [TensorSpec("serving_default_map:0", 0, (1, 16, 16, 2), "int8"),
             TensorSpec("serving_default_image:0", 1, (1, 66, 66, 3), "int8")]
    assert [n for _, n in bind_inputs(specs, ["image", "map"])] == ["map", "image"]


def test_export_scores_the_junctions_of_every_exported_model(routed_run, tmp_path):
    from edgecnn.export.bundle import export_run
    from edgecnn.quantize import calibration as cal

    path, _ = cal.build(cal.source_from_run(routed_run), tmp_path / "cal", count=30)
    r = export_run(routed_run, path, tmp_path / "bundle", precisions=("int8", "fp32"))
    metrics = json.loads((r.root / "model_card.json").read_text())["metrics"]
    assert {"float_keras", "model_int8.tflite", "model_fp32.tflite"} <= set(metrics)
    trained = json.loads((routed_run / "metrics.json").read_text())["junctions"]
    for name, m in metrics.items():
        assert m["junctions"]["junction_frames"] == trained["junction_frames"] > 0, name
        assert 0 <= m["junctions"]["route_mode_share_all"] <= 1, name


def test_option_and_data_errors(nav_data, tmp_path):
    with pytest.raises(OptionError, match="--unrouted"):
        resolve_config(TrainConfig(data=str(nav_data), out=str(tmp_path / "x"), task="steer", routed=False))
    assert resolve_config(TrainConfig(data="d", out="o", task="navigate")).head == "gmm"
    from edgecnn.train.tasks import get_task

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "labels.csv").write_text("image,steering\nimages/0.jpg,0.1\n")
    cfg = resolve_config(TrainConfig(data=str(plain), out=str(tmp_path / "o"), task="navigate"))
    with pytest.raises(DataError, match="no map column"):
        get_task("navigate").load_data(cfg)
