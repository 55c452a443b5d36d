"""Robustness, short CI form, on our own trained models: mutation campaign (library + real CLI), kill -9 during
quantize/export, full disk and read-only output, training on a faulty data set.

One module fixture builds the workspace once (a 700-image shapes set with 1 % injected faults, a 1-epoch run
trained on it, a calibration set and an exported int8 + fp32 bundle); everything else reuses it. The long form is
``edgecnn robustness --mutants 1000 --kill-trials 20``.
"""

from __future__ import annotations

import os

import pytest

from edgecnn_robustness import campaign, diskfaults, killtest
from edgecnn_robustness.mutate import KINDS
from edgecnn_robustness.suite import prepare_workspace, training_figures

pytestmark = [pytest.mark.host, pytest.mark.slow]

MUTANTS = int(os.environ.get("EDGECNN_ROBUSTNESS_MUTANTS", "200"))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return prepare_workspace(tmp_path_factory.mktemp("robustness"), seed=0)


@pytest.fixture(scope="module")
def sources(ws):
    return {"int8": (ws.bundle / "model_int8.tflite").read_bytes(), "fp32": (ws.bundle / "model_fp32.tflite").read_bytes()}


@pytest.fixture(scope="module")
def mutation(ws, sources, tmp_path_factory):
    return campaign.run_mutants(sources, MUTANTS, tmp_path_factory.mktemp("mutants"), seed=0, workers=2,
                                timeout_s=15.0)


def test_training_proceeds_on_faulty_data_and_counts_the_faults(ws):
    figures = training_figures(ws)
    assert figures["ok"], figures
    assert figures["skipped_counted"] == 4  # zero-byte, truncated, too large, undecodable; 3 others are usable


def test_mutation_campaign_no_crash_no_hang(mutation):
    counts = mutation.counts()
    print(counts)
    assert counts["mutants"] == MUTANTS >= 200
    assert counts["overall"]["crash"] == 0, [r.to_dict() for r in mutation.crashes()][:3]
    assert counts["overall"]["hang"] == 0
    assert mutation.unfinished == 0
    # Every kind produced mutants, and the campaign really damaged things (not all accepted).
    assert set(counts["per_kind"]) == set(KINDS)
    assert counts["overall"]["rejected"] + counts["overall"]["contained"] >= MUTANTS // 3
    for r in mutation.results:
        for st in r.stages:
            if st.outcome in ("rejected", "contained"):
                assert st.message and "\n" not in st.message and "Traceback" not in st.message, st
    assert counts["slowest_stage_s"] <= 25.0


def test_mutants_through_the_real_cli_never_traceback_or_die_by_signal(ws, sources, mutation, tmp_path):
    numbers = campaign.pick_cli_mutants(mutation, 8)
    outcomes = campaign.run_cli_mutants(sources, numbers, tmp_path, str(ws.image), seed=0, workers=2)
    summary = campaign.summarise_cli(outcomes)
    print(summary)
    bad = [o for o in outcomes if o.outcome not in ("accepted", "rejected")]
    assert not bad, bad
    assert summary["runs"] == 3 * len(numbers) and summary["rejected"] > 0


def test_kill9_during_quantize_and_export_leaves_old_or_complete_new(ws, sources, tmp_path):
    # Timings of the fixture's uninterrupted export; quantize does a little less before and after its last log line.
    trials = killtest.quantize_trials(ws.run, ws.calibration, tmp_path / "q", sources["fp32"], 3,
                                      max(3.0, 0.7 * ws.export_s), max(1.0, 0.5 * ws.export_tail_s), seed=1)
    trials += killtest.export_trials(ws.run, ws.calibration, tmp_path / "e", ws.bundle, 3, ws.export_s,
                                     ws.export_tail_s, seed=1)
    summary = killtest.summarise(trials)
    print(summary, [t.to_dict() for t in trials])
    assert summary["trials"] == 6 and summary["partial"] == 0, trials
    assert summary["interrupted"] >= 3


def test_sigterm_during_export_cleans_up_and_exits_143(ws, tmp_path):
    r = killtest.sigterm_export_trial(ws.run, ws.calibration, tmp_path, ws.bundle, ws.export_tail_s, seed=2)
    print(r)
    assert r["ok"], r


def test_full_disk_and_read_only_output_give_a_clear_error_and_no_files(ws, tmp_path):
    cases = diskfaults.disk_cases(ws.run, ws.calibration, tmp_path, quick=True)
    for c in cases:
        assert c.ok, c
    if not diskfaults.mount_available():
        pytest.skip("tmpfs mounts are not possible here; only the 'parent is a file' case ran")
    assert {c.name for c in cases} >= {"full disk: quantize", "read-only folder: quantize"}
