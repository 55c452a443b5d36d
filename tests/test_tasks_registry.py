"""The task registry and the one source of truth for training defaults (no TensorFlow needed).

Parametrised over the registries: a task or architecture registered later is checked the moment it exists.
"""

from __future__ import annotations

import dataclasses

import click
import pytest
from conftest import run_cli

from edgecnn.cli import cmd_pipeline, cmd_train
from edgecnn.errors import OptionError
from edgecnn.models.registry import get_spec, list_models
from edgecnn.pipeline.config import PipelineConfig
from edgecnn.train.cluster import STRATEGIES, DistributeOptions
from edgecnn.train.config import (
    DEFAULTS,
    INPUT_RANGE_CHOICES,
    TrainConfig,
    resolve_config,
)
from edgecnn.train.tasks import Task, get_task, head_choices, list_tasks


def test_the_registry_has_classify_and_steer():
    assert {"classify", "steer"} <= set(list_tasks()) and list_tasks()[0] == "classify"  # the default first
    with pytest.raises(OptionError, match="unknown task 'no-such-task'; choose one of: classify"):
        get_task("no-such-task")


@pytest.mark.parametrize("name", list_tasks())
def test_every_task_declares_usable_defaults(name):
    task = get_task(name)
    assert isinstance(task, Task) and task.name == name and task.summary
    assert name in get_spec(task.default_arch).tasks  # its default architecture is registered for it
    assert set(task.heads) <= set(head_choices())
    assert isinstance(task.flip_ok, bool)
    resolved = resolve_config(TrainConfig(data="d", out="o", task=name, head=task.heads[0] if task.heads else "regression"))
    assert resolved.arch == task.default_arch
    h, w = get_spec(task.default_arch).default_size
    assert resolved.img_size == (w, h)


def test_flip_is_declared_per_task():
    assert get_task("steer").flip_ok and not get_task("classify").flip_ok


@pytest.mark.parametrize("spec", list_models(), ids=lambda s: s.name)
def test_the_registered_size_is_used_unless_img_size_says_otherwise(spec):
    task = spec.tasks[0]
    h, w = spec.default_size
    assert resolve_config(TrainConfig(data="d", out="o", task=task, arch=spec.name)).img_size == (w, h)
    other = (max(40, spec.min_size[1]), max(30, spec.min_size[0]) + 1)  # WxH, not the registered size
    assert resolve_config(TrainConfig(data="d", out="o", task=task, arch=spec.name, img_size=other)).img_size == other


def test_donkey_trains_at_its_own_160x120():
    c = resolve_config(TrainConfig(data="d", out="o", task="steer", arch="donkey"))
    assert c.img_size == (160, 120)  # WxH; the model input is 120x160 HxW
    assert resolve_config(TrainConfig(data="d", out="o", task="steer")).img_size == (200, 66)  # pilotnet
    assert PipelineConfig(task="steer", arch="donkey").resolved_img_size == "160x120"
    assert PipelineConfig(task="steer").resolved_img_size == "200x66"
    assert PipelineConfig().resolved_img_size == "64x64"


@pytest.mark.parametrize("kw, match", [
    ({"task": "classify", "arch": "pilotnet"}, "architecture 'pilotnet' is for steer, not classify"),
    ({"task": "steer", "head": "softmax"}, "not a steer head"),
    ({"arch": "resnet9000"}, "unknown architecture"),
    ({"epochs": 0}, "--epochs and --batch must be >= 1"),
    ({"lr": 0.0}, "--lr > 0"),
    ({"patience": -1}, "--patience must be >= 0"),
    ({"input_range": "0,255"}, "--input-range must be one of"),
])
def test_resolve_refuses_bad_options_in_one_line(kw, match):
    with pytest.raises(OptionError, match=match):
        resolve_config(TrainConfig(data="d", out="o", **kw))


def _params(command: click.Command) -> dict[str, click.Parameter]:
    return {p.name: p for p in command.params}


def test_train_options_take_their_defaults_and_choices_from_the_dataclass_and_registries():
    params = _params(cmd_train.cli)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    shared = fields & set(params)
    assert {"epochs", "batch", "seed", "lr", "patience", "augment", "input_range", "head", "components",
            "throttle", "task", "cache_dir", "arch", "img_size"} <= shared
    for name in shared - {"data", "out"}:
        assert params[name].default == DEFAULTS[name], name
    assert tuple(params["task"].type.choices) == list_tasks()
    assert tuple(params["head"].type.choices) == head_choices()
    assert tuple(params["input_range"].type.choices) == INPUT_RANGE_CHOICES
    assert tuple(params["strategy"].type.choices) == STRATEGIES
    assert params["strategy"].default == DistributeOptions().strategy
    assert params["collective_timeout"].default == DistributeOptions().collective_timeout


def test_pipeline_defaults_are_train_defaults():
    p = PipelineConfig()
    for name in ("epochs", "batch", "seed", "lr", "patience", "head", "components", "augment", "task"):
        assert getattr(p, name) == DEFAULTS[name], name
    assert tuple(_params(cmd_pipeline.cli)["task"].type.choices) == list_tasks()
    with pytest.raises(OptionError, match="task must be one of classify"):
        PipelineConfig(task="no-such-task")


def test_help_shows_the_dataclass_defaults():
    """`edgecnn train --help` (with TensorFlow blocked) and `edgecnn pipeline --help` print TrainConfig's values."""
    r = run_cli("train", "--help", block_tf=True)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    for option in ("epochs", "batch", "seed", "lr", "patience", "components"):
        shown = text.split(f"--{option} ")[1].split("[default: ")[1].split("]")[0]  # the first default after it
        assert shown == str(DEFAULTS[option]), option
    assert "donkey 160x120" in text and "pilotnet 200x66" in text
    r = run_cli("pipeline", "--help", block_tf=True)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert f"(default {DEFAULTS['epochs']})" in text and f"(default {DEFAULTS['seed']})" in text
