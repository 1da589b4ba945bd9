import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from staircase.errors import SpecError
from staircase.profile.backends import get_backend
from staircase.profile.calibration import (
    ALIGNMENT_RESIDUAL_TIE,
    CALIBRATION_VERSION,
    candidate_alignments,
    disturbed_whole_network,
    fit_best_alignment,
    fit_calibration,
)
from staircase.profile.prediction import LatencyModel
from staircase.profile.store import Calibration, FullTime, NetworkEntry, Profile, ProfileMismatch, SlotEntry
from staircase.profile.sweep import grid_widths, profile_network


def _sweep(path, **kw):
    kw.setdefault("grid", 8)
    kw.setdefault("rounds", 1)
    kw.setdefault("log", lambda m: None)
    return profile_network("wrn_16_1", get_backend("torch", threads=1), path, timing="quick", progress=False, **kw)


def _entry(slots: dict[str, tuple[int, dict[str, str]]], full: FullTime | None = None) -> NetworkEntry:
    return NetworkEntry("n", [1], {n: SlotEntry(w, layers) for n, (w, layers) in slots.items()}, full=full)


def test_grid_widths():
    assert grid_widths(20, 8) == [1, 8, 16, 20]
    assert grid_widths(3, 1) == [1, 2, 3]


@pytest.mark.slow
def test_sweep_shares_ops_and_predicts(tmp_path):
    r = _sweep(tmp_path / "p.json")
    assert r.complete and r.network == "wrn_16_1@3x32x32"
    prof = Profile.load(tmp_path / "p.json")
    slots = prof.networks[r.network].slots
    assert len(slots) == 6
    # blocks 1 of each stage repeat block 0's consumer: 6 slots share 3 consumer ops + 5 producers... measured once
    keys = {k for s in slots.values() for k in s.layers.values()}
    assert len(keys) == len(prof.ops) == 8
    assert r.measured >= sum(len(grid_widths(s.width, 8)) for s in slots.values()) - 2 * 3
    latency = LatencyModel(prof, r.network)
    full = latency.predict({})
    assert full.median_ms == pytest.approx(prof.networks[r.network].full.median_ms)
    narrow = {"block3.layer.0.conv1": 8, "block3.layer.1.conv1": 8}
    smaller = latency.predict(narrow)
    assert smaller.median_ms != full.median_ms
    calibration = prof.networks[r.network].calibration
    assert 0.2 <= calibration.scale <= 3.0 and len(calibration.students) == 12
    assert calibration.misalignment >= 0 and calibration.version == CALIBRATION_VERSION == 7
    penalty = calibration.misalignment * latency.misaligned_ms(narrow, calibration.alignment)
    assert smaller.median_ms == pytest.approx(full.median_ms + calibration.scale * latency.raw_delta(narrow) + penalty)
    with pytest.raises(SpecError, match="lacks slot"):
        latency.predict({"conv1": 3})
    logs = []
    again = _sweep(tmp_path / "p.json", log=logs.append)
    assert again.measured == 0 and again.reused > 0
    assert not any("calibrating" in m for m in logs)
    # --recalibrate times the whole networks again and keeps every op measurement
    logs.clear()
    recalibrated = _sweep(tmp_path / "p.json", recalibrate=True, log=logs.append)
    assert recalibrated.complete and recalibrated.measured == 0
    assert any("calibrating the prediction on 12 students" in m for m in logs)
    entry = Profile.load(tmp_path / "p.json").networks[r.network]
    assert entry.calibration.version == CALIBRATION_VERSION and entry.full is not None


@pytest.mark.slow
def test_profile_on_another_device_is_refused(tmp_path):
    _sweep(tmp_path / "p.json")
    prof = Profile.load(tmp_path / "p.json")
    other = dict(prof.fingerprint, threads=99)
    with pytest.raises(ProfileMismatch, match="threads: profile 1 vs here 99"):
        prof.check_fingerprint(other)
    prof.check_fingerprint(other, override=True)
    # another version of the same runtime is used for designs, with a warning naming both
    newer = dict(prof.fingerprint, backend_version="99.0")
    said = []
    prof.check_fingerprint(newer, warn=said.append)
    assert len(said) == 1 and f"torch {prof.fingerprint['backend_version']}" in said[0] and "99.0" in said[0]
    with pytest.raises(ProfileMismatch, match="backend_version"):  # but never mixed into its measurements
        prof.check_fingerprint(newer)
    with pytest.raises(ProfileMismatch, match="threads"):  # and nothing else is let through
        prof.check_fingerprint(dict(newer, threads=99), warn=said.append)


def test_corrupt_profile_is_named_and_left_alone(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"format": "staircase-profile", "version": 1, "fing')
    before = path.read_text()
    with pytest.raises(SpecError, match=f"profile {path} is not valid JSON"):
        _sweep(path)
    assert path.read_text() == before
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(SpecError, match="is not a staircase profile"):
        Profile.load(path)


def test_journal_replays_and_ignores_a_torn_line(tmp_path):
    path = tmp_path / "p.json"
    prof = Profile(path, {"backend": "x"}, {})
    op = {"kind": "linear", "free": "in", "cin": 4, "cout": 2}
    prof.add_round("k", op, 3, {"median_ms": 1.0, "iqr_ms": 0.1, "n": 5, "noisy": False, "samples": 5})
    prof.save()
    prof.add_round("k", op, 4, {"median_ms": 2.0, "iqr_ms": 0.1, "n": 5, "noisy": False, "samples": 5})
    with open(prof.journal, "a") as f:
        f.write('{"key": "k", "op": {"kind": "lin')  # killed mid-write
    loaded = Profile.load(path)
    assert loaded.rounds_done("k", 3) == 1 and loaded.rounds_done("k", 4) == 1
    assert loaded.curve("k").median_ms == [1.0, 2.0]


@pytest.mark.slow
def test_kill_9_then_resume_loses_at_most_one_point(tmp_path):
    path = tmp_path / "p.json"
    cmd = [sys.executable, "-m", "staircase", "profile", "wrn_16_1", "--backend", "torch", "--threads", "1",
           "--grid", "2", "--rounds", "1", "--timing", "quick", "--out", str(path), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = tmp_path / "p.json.journal"
    deadline = time.time() + 120
    while time.time() < deadline and (not journal.exists() or journal.read_text().count("\n") < 10):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = journal.read_text().count("\n")
    assert done_before >= 10
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["complete"]
    prof = Profile.load(path)
    total = sum(len(r) for e in prof.ops.values() for r in e["rounds"].values())
    # every point journaled before the kill is kept, and none of them was measured again
    assert total == done_before + summary["measured"]
    assert summary["reused"] > 0


@pytest.mark.slow
def test_budget_stops_and_resumes(tmp_path):
    r = _sweep(tmp_path / "p.json", budget_minutes=0.0001)
    assert not r.complete
    r2 = _sweep(tmp_path / "p.json")
    assert r2.complete and r2.reused + r2.measured > 0


def test_points_timed_against_the_full_width_are_scaled_by_its_median(tmp_path):
    from staircase.profile.store import Profile

    prof = Profile(tmp_path / "p.json", {}, {})
    op = {"kind": "conv", "free": "out", "cin": 4, "cout": 8, "kernel": [1, 1], "stride": [1, 1],
          "padding": [0, 0], "hw": [4, 4], "norm_act": False}
    # the machine was 2x slower during the second round: raw medians disagree, ratios do not
    for ref, slow in ((1.0, 1.0), (2.0, 2.0)):
        prof.add_round("k", op, 4, {"median_ms": 0.5 * slow, "iqr_ms": 0.01, "n": 9, "noisy": False, "samples": 9,
                                    "ratio": 0.5, "ratio_iqr": 0.01, "ref_ms": ref}, journal=False)
        prof.add_round("k", op, 8, {"median_ms": 1.0 * slow, "iqr_ms": 0.01, "n": 9, "noisy": False, "samples": 9,
                                    "ratio": 1.0, "ratio_iqr": 0.01, "ref_ms": ref}, journal=False)
    curve = prof.curve("k")
    assert curve.median_ms == pytest.approx([0.75, 1.5])  # ratio x the reference's median (1.5)
    assert curve.stderr_ms[0] < 0.01


def test_a_step_top_off_a_coarse_grid_is_found_by_a_probe_and_only_its_gap_is_swept(tmp_path):
    prof = Profile(tmp_path / "p.json", {}, {})
    op = {"kind": "conv", "free": "out", "cin": 4, "cout": 40, "kernel": [1, 1], "stride": [1, 1],
          "padding": [0, 0], "hw": [4, 4], "norm_act": False}
    prof.networks["n@1"] = _entry({"s": (40, {"conv": "k"})})
    prof.networks["n@1"].grid = 8

    def measure(points):
        for key, w in points:  # true steps of 12 channels: tops at 12, 24, 36
            if not prof.rounds_done(key, w):
                prof.add_round(key, op, w, {"median_ms": 1.0 + 0.5 * ((w + 11) // 12), "iqr_ms": 0.0, "n": 9,
                                            "noisy": False, "samples": 9}, journal=False)

    measure([("k", w) for w in grid_widths(40, 8)])
    # on the grid: 16 costs what 24 does (a wider width), so only 8, 24, 32 and 40 are usable
    assert prof.slot_curve("n@1", "s").optimal() == [8, 24, 32, 40]
    from staircase.profile import sweep
    from staircase.profile.timing import TIMINGS

    asked = []

    class Runner:  # measures the true curve and records what it was asked
        def rounds(self, points, upto, protocol, total=None, first_round=0):
            asked.append(sorted(w for _, w in points))
            measure(points)
            return True

    prof.networks["n@1"].edges_done = True
    assert sweep.refine_and_edges(Runner(), prof, "n@1", 8, 1, TIMINGS["quick"], lambda m: None)
    # one probe in the gap below the edge 8 -> 16 (the gaps under usable grid widths hold no
    # hidden top), then, as the probe was usable, every width of that gap alone
    assert asked == [[12], list(range(9, 16))]
    assert prof.slot_curve("n@1", "s").optimal() == [12, 24, 32, 40]
    assert prof.networks["n@1"].refined


def test_calibration_fit_separates_misalignment_from_scale():
    # measured = 0.9 * predicted + 0.3 * misaligned, exactly: both come back
    points = [{"predicted_delta_ms": a, "misaligned_ms": b, "measured_delta_ms": 0.9 * a + 0.3 * b}
              for a, b in ((-1.0, 0.0), (-0.5, 2.0), (-0.8, 1.0), (-0.2, 0.0))]
    assert fit_calibration(points) == (pytest.approx(0.9), pytest.approx(0.3))
    # a negative misalignment cost is not physical: the scale alone is fitted
    points = [{"predicted_delta_ms": a, "misaligned_ms": b, "measured_delta_ms": a - 0.1 * b}
              for a, b in ((-1.0, 0.0), (-0.5, 2.0))]
    scale, misalignment = fit_calibration(points)
    assert misalignment == 0.0 and scale == pytest.approx((1.0 + 0.5 * 0.7) / 1.25)


def test_calibration_keeps_the_alignment_whole_networks_pay_for():
    assert candidate_alignments(16) == [16, 8, 4, 2]
    # a step that is not a power of two is a noisy one: the nearest power of two
    assert candidate_alignments(15) == [16, 8, 4, 2] == candidate_alignments(17)
    assert candidate_alignments(11) == [8, 4, 2] and candidate_alignments(None) == [] and candidate_alignments(1) == []
    # the ops step every 16 channels, but the network pays 0.2 ms per slot off a multiple of 4
    rng = random.Random(0)
    points = []
    for i in range(12):
        align = [None, 16, None, 8, None, 4][i % 6]  # the calibration's mix
        widths = {f"s{k}": rng.randint(8, 64) for k in range(6)}
        if align:
            widths = {n: align * max(1, round(w / align)) for n, w in widths.items()}
        predicted = -0.01 * sum(64 - w for w in widths.values())
        measured = 0.95 * predicted + 0.2 * sum(1.0 for w in widths.values() if w % 4)
        points.append({"widths": widths, "predicted_delta_ms": predicted, "measured_delta_ms": measured})
    block, scale, misalignment, residuals = fit_best_alignment(
        points, candidate_alignments(16), lambda widths, b: sum(1.0 for w in widths.values() if b and w % b))
    assert block == 4 and scale == pytest.approx(0.95) and misalignment == pytest.approx(0.2)
    assert residuals["4"] == pytest.approx(0, abs=1e-9) and residuals["16"] > 0.01
    assert all(p["misaligned_ms"] == sum(1.0 for w in p["widths"].values() if w % 4) for p in points)


def test_calibration_keeps_the_coarser_alignment_when_a_finer_one_fits_no_better_than_noise():
    # the network pays for odd widths; the feature for alignment 4 is that, slightly blurred
    rng = random.Random(1)
    points = []
    for _ in range(12):
        widths = {f"s{k}": rng.randint(8, 64) for k in range(6)}
        predicted = -0.01 * sum(64 - w for w in widths.values())
        odd = sum(1.0 for w in widths.values() if w % 2)
        points.append({"widths": widths, "predicted_delta_ms": predicted,
                       "measured_delta_ms": 0.95 * predicted + 0.2 * odd + rng.gauss(0, 0.1)})

    def misaligned(blur):
        def feature(widths, block):
            odd = sum(1.0 for w in widths.values() if w % 2)
            return odd + blur * (sum(widths.values()) % 3) if block == 4 else odd if block == 2 else 0.0
        return feature

    block, _, _, residuals = fit_best_alignment([dict(p) for p in points], [4, 2], misaligned(0.03))
    assert residuals["2"] < residuals["4"] <= residuals["2"] * (1 + ALIGNMENT_RESIDUAL_TIE)
    assert block == 4
    block, _, _, residuals = fit_best_alignment([dict(p) for p in points], [4, 2], misaligned(0.3))
    assert residuals["4"] > residuals["2"] * (1 + ALIGNMENT_RESIDUAL_TIE) and block == 2


@pytest.mark.slow
def test_misaligned_ms_counts_slots_off_the_block(tmp_path):
    r = _sweep(tmp_path / "p.json")
    prof = Profile.load(tmp_path / "p.json")
    slots = prof.networks[r.network].slots
    name = "block3.layer.0.conv1"
    time_at_40 = sum(prof.curve(k).at(40) for k in slots[name].layers.values())
    latency = LatencyModel(prof, r.network)
    assert latency.misaligned_ms({name: 40}, 16) == pytest.approx(time_at_40)
    assert latency.misaligned_ms({name: 48}, 16) == 0.0
    assert latency.misaligned_ms({name: 40}, None) == 0.0


def test_snapping_up_never_buys_channels_with_time(tmp_path):
    prof = Profile(tmp_path / "p.json", {}, {})
    op = {"kind": "conv", "free": "out", "cin": 4, "cout": 64, "kernel": [1, 1], "stride": [1, 1],
          "padding": [0, 0], "hw": [4, 4], "norm_act": False}
    prof.networks["n@1"] = _entry({"s": (64, {"conv": "k"})}, FullTime(9.0, 0.0))
    # flat steps of 16 up to 32, then a slope (every width slower than the last)
    times = {w: 1.0 + (w + 15) // 16 if w <= 32 else 3.0 + 0.05 * (w - 32) for w in range(4, 65, 4)}
    for w, t in times.items():
        prof.add_round("k", op, w, {"median_ms": t, "iqr_ms": 0.0, "n": 9, "noisy": False, "samples": 9},
                       journal=False)
    assert prof.slot_curve("n@1", "s").optimal() == [16, 32, *range(36, 65, 4)]
    latency = LatencyModel(prof, "n@1")
    assert latency.snap("s", 20, "up") == 32  # the step's top costs what 20 costs
    assert latency.snap("s", 40, "up") == 40  # on the slope, wider is slower: it stays
    assert latency.snap("s", 42, "up") == 44  # 42 costs what 44 does (the next measured width)
    assert latency.snap("s", 20, "nearest") == 16
    assert latency.snap("s", 20, "down") == 16
    # the measured curve decides, not the prediction's misalignment term (it would price 40
    # at 0.5 x the slot's full-width time and let 40 grow to 64)
    prof.networks["n@1"].calibration = Calibration(scale=1.0, misalignment=0.5, alignment=16)
    assert latency.snap("s", 40, "up") == 40


def test_a_noisy_full_network_time_asks_for_recalibration(tmp_path):
    prof = Profile(tmp_path / "p.json", {}, {})
    prof.networks["n@1"] = _entry({}, FullTime(39.3, 8.7, noisy=True))
    warning = disturbed_whole_network(prof, "n@1")
    assert "--recalibrate" in warning and "8.7 ms on 39.3 ms" in warning
    prof.networks["n@1"].full.noisy = False
    assert disturbed_whole_network(prof, "n@1") is None
    prof.networks["n@1"].full = None  # not finished yet: nothing to say
    assert disturbed_whole_network(prof, "n@1") is None


def test_a_slot_whose_curve_leaves_its_step_unclear_takes_the_step_of_its_network(tmp_path):
    prof = Profile(tmp_path / "p.json", {}, {})
    prof.networks["n@1"] = _entry({s: (64, {"conv": k}) for s, k in (("a", "ka"), ("b", "kb"))})
    prof.networks["n@1"].grid = 4
    op = {"kind": "conv", "free": "out", "cin": 4, "cout": 64, "kernel": [1, 1], "stride": [1, 1],
          "padding": [0, 0], "hw": [4, 4], "norm_act": False}

    def measure(key, time_at, iqr):
        for w in range(4, 65, 4):
            prof.add_round(key, op, w, {"median_ms": time_at(w), "iqr_ms": iqr, "n": 9, "noisy": False,
                                        "samples": 9}, journal=False)

    measure("ka", lambda w: 1.0 + (w + 15) // 16, 0.0)  # a clean staircase of 16
    assert prof.network_step("n@1") == 16  # slot b is not measured yet: its curve is left out
    # a ramp that also steps at 16, measured too coarsely to say which dominates
    measure("kb", lambda w: 1.0 + 0.01 * w + 0.08 * ((w + 15) // 16) + 0.02 * ((w // 4) % 3 == 1), 0.1)
    b = prof.slot_curve("n@1", "b")
    alone = dataclasses.replace(b, network_step=None).steps()
    assert not alone.clear and alone.step == 4 and alone.uncertain  # its lattice is measured again
    assert prof.network_step("n@1") == 16  # decided by the slots that decide
    assert b.steps().step == 16 and b.steps().usable == [16, 32, 48, 64]
    assert prof.slot_curve("n@1", "a").steps().usable == [16, 32, 48, 64]


def test_an_op_shared_by_two_slots_is_swept_to_the_widest(tmp_path):
    r = profile_network("user_nets:two_widths", get_backend("torch", threads=1), tmp_path / "p.json", grid=8,
                        rounds=1, timing="quick", calibration_students=0, progress=False, log=lambda m: None)
    entry = r.profile.network(r.network)
    assert {n: e.width for n, e in entry.slots.items()} == {"stem": 32, "a": 48, "b": 40}
    assert entry.slots["a"].layers["a"] == entry.slots["b"].layers["b"]  # one op signature for both
    assert r.profile.slot_curve(r.network, "a").widths[-1] == 48
    assert r.profile.slot_curve(r.network, "b").widths[-1] >= 40
    assert 48 in LatencyModel(r.profile, r.network).optimal("a")  # the full width is reachable
