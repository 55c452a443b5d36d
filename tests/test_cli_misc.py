"""The CLI's shape: help, version, unknown commands, data generation errors."""

from __future__ import annotations


def test_help_lists_commands_with_summaries(cli):
    r = cli("--help")
    assert r.returncode == 0
    for name in ("data", "train", "models"):
        assert f"  {name} " in r.stdout


def test_unknown_command_is_a_usage_error(cli):
    r = cli("frobnicate")
    assert r.returncode == 2 and "No such command" in r.stderr and "Traceback" not in r.stderr


def test_data_shapes_bad_arguments(cli, tmp_path):
    r = cli("data", "shapes", tmp_path / "s", "--per-class", "0")
    assert r.clean_error and "--per-class" in r.stderr
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep")
    r = cli("data", "shapes", tmp_path / "taken", "--per-class", "1")
    assert r.clean_error and "already exists" in r.stderr
    assert (tmp_path / "taken" / "mine.txt").read_text() == "keep"
