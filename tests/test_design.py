import itertools
import json
import random

import pytest

from staircase.design.baselines import (
    applied_removals,
    match_measured,
    prune_until,
    pruned_family,
    removal_order,
    uniform_family,
    uniform_for_latency,
    uniform_widths,
)
from staircase.design.designer import Saliency
from staircase.design.knapsack import Choice, solve
from staircase.errors import StaircaseError
from staircase.models import create_model
from staircase.slots import SlotGraph


def _brute_force(choices, budget):
    best = None
    for combo in itertools.product(*choices.values()):
        cost = sum(c.cost for c in combo)
        value = sum(c.value for c in combo)
        if cost <= budget + 1e-12 and (best is None or value > best):
            best = value
    return best


def test_knapsack_matches_brute_force_and_always_fits():
    rng = random.Random(0)
    for _ in range(40):
        choices = {f"s{i}": [Choice(w, rng.uniform(-2, 0), rng.uniform(0, 5)) for w in range(rng.randint(1, 4))]
                   for i in range(rng.randint(1, 5))}
        lo = sum(min(c.cost for c in cs) for cs in choices.values())
        budget = lo + rng.uniform(0, 2)
        sel = solve(choices, budget, bins=20000)
        assert sel.cost <= budget + 1e-9
        exact = _brute_force(choices, budget)
        # rounding each cost up by < one bin can only lose what a slightly smaller budget loses
        assert sel.value <= exact + 1e-9
        assert sel.value >= _brute_force(choices, budget - len(choices) * sel.cost_resolution) - 1e-9


def test_knapsack_with_no_room_takes_the_cheapest_choices():
    choices = {"a": [Choice(4, -1.0, 1.0), Choice(8, 0.0, 5.0)], "b": [Choice(2, -0.5, 1.0), Choice(6, 0.0, 3.0)]}
    assert solve(choices, -1.5).widths == {"a": 4, "b": 2}


def test_knapsack_refuses_an_unreachable_budget():
    with pytest.raises(StaircaseError, match="below the cheapest"):
        solve({"a": [Choice(8, 1.0, 1.0), Choice(16, 2.0, 2.0)]}, 0.5)


def test_saliency_keeps_the_largest_channels():
    s = Saliency({"a": [0.1, 3.0, 1.0], "b": [2.0]})
    assert s.kept("a", 1) == 3.0 and s.kept("a", 2) == 4.0 and s.kept("a", 3) == pytest.approx(4.1)
    assert s.total({"a": 2, "b": 1}) == 6.0 and s.full() == pytest.approx(6.1)


def test_removal_order_and_prune_until_meet_a_target():
    full = {"a": 4, "b": 4}
    order = removal_order({"a": [1, 2, 3, 4], "b": [0.5, 0.6, 10, 11]})
    assert order[:3] == ["b", "b", "a"]

    def predicted(w):
        return w["a"] + 2 * w["b"]

    widths = prune_until(full, order, predicted, 8.0)
    assert predicted(widths) <= 8.0
    assert widths == {"a": 4, "b": 2}  # the two weak channels of b go first, and that is enough
    assert prune_until(full, order, predicted, 100.0) == full


def test_applied_removals_skip_slots_already_at_one_channel():
    full = {"a": 2, "b": 3}
    order = ["a", "a", "a", "b", "b", "a"]  # a's second and third removals cannot happen
    assert applied_removals(full, order, 3) == ["a", "b", "b"]
    assert applied_removals(full, order, 1) == ["a"]


def test_uniform_for_latency_is_the_widest_that_fits():
    graph = SlotGraph(create_model("wrn_16_1"), (3, 32, 32))
    slots = graph.selected()

    def predicted(w):
        return sum(w.values())

    target = 0.5 * sum(s.width for s in slots)
    widths, scale = uniform_for_latency(slots, predicted, target)
    assert predicted(widths) <= target
    assert predicted(uniform_widths(slots, min(1.0, scale + 0.05))) > target


def _staircase_ms(widths):
    """A 'device': latency rises in 8-channel steps, misaligned widths cost extra."""
    return sum(1.0 + (w + 7) // 8 + (0.5 if w % 8 else 0.0) for w in widths.values())


@pytest.mark.parametrize("bias", [0.55, 1.0, 1.8])
def test_match_measured_reaches_the_measured_latency_whatever_the_prediction_bias(bias):
    full = {f"s{i}": 64 for i in range(6)}
    rng = random.Random(1)
    order = [n for n in full for _ in range(63)]
    rng.shuffle(order)
    calls = []

    def measure(widths):
        calls.append(widths)
        return "result", _staircase_ms(widths)

    for family in (pruned_family(full, order), uniform_family([type("S", (), {"name": n, "width": w})()
                                                               for n, w in full.items()])):
        for target in (20.0, 35.0, 50.0):
            calls.clear()
            found = match_measured(family, lambda w: bias * _staircase_ms(w), measure, target, tolerance=0.03)
            assert abs(found.measured_ms - target) <= 0.03 * target + 1.5  # within one step of the staircase
            assert found.result == "result" and found.widths == family(found.t)
            assert len(calls) == len(found.tried) <= 5
            assert found.measured_ms == min((ms for _, ms in found.tried), key=lambda ms: abs(ms - target))


def test_match_measured_needs_one_measurement_when_the_prediction_is_right():
    full = {"a": 500, "b": 500}
    family = pruned_family(full, ["a", "b"] * 499)

    def smooth(widths):
        return float(sum(widths.values()))

    found = match_measured(family, smooth, lambda w: (None, smooth(w)), 600.0)
    assert len(found.tried) == 1 and found.measured_ms == pytest.approx(600.0, abs=1.0)


def test_match_measured_stops_at_the_ends_of_the_family():
    full = {"a": 16, "b": 16}
    family = pruned_family(full, ["a"] * 15 + ["b"] * 15)

    def measure(widths):
        return None, _staircase_ms(widths)

    above = match_measured(family, _staircase_ms, measure, 100.0)
    assert above.widths == full and len(above.tried) == 1
    below = match_measured(family, lambda w: 0.5 * _staircase_ms(w), measure, 1.0)
    assert below.widths == {"a": 1, "b": 1} and len(below.tried) <= 5


def test_parameter_saliency_counts_the_weights_of_a_channel():
    graph = SlotGraph(create_model("wrn_16_1"), (3, 32, 32))
    name = graph.selected()[0].name  # conv 16->16 3x3, bn 16, conv 16->16 3x3
    s = Saliency.from_parameters(graph, [name])
    assert s.kept(name, 1) == 16 * 9 + 2 + 16 * 9


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    from staircase.profile.backends import get_backend
    from staircase.profile.sweep import profile_network

    path = tmp_path_factory.mktemp("prof") / "p.json"
    profile_network("wrn_16_1", get_backend("torch", threads=1), path, grid=4, rounds=1, timing="quick",
                    progress=False, log=lambda m: None)
    return path


def test_design_for_a_target_writes_a_measured_student_and_baselines(profiled, tmp_path, run_cli):
    from staircase.design.designer import Designer
    from staircase.modelref import resolve_model
    from staircase.profile.network import predict
    from staircase.profile.store import Profile
    from staircase.spec import StudentSpec

    prof = Profile.load(profiled)
    designer = Designer(prof, resolve_model("wrn_16_1"))
    target = (designer.smallest_ms() + designer.full_ms) / 2  # on a busy machine the steps may be few
    out = tmp_path / "students" / "s.json"
    r = run_cli("design", "wrn_16_1", "--profile", str(profiled), "--target-ms", f"{target}", "--baselines",
                "--out", str(out), "--json")
    assert r.returncode in (0, 3), r.stderr  # 3: measured over the target on a busy machine (said on stderr)
    result = json.loads(r.stdout)
    names = [s["student"] for s in result["students"]]
    assert names == ["s", "s-l1", "s-uniform"]
    spec = StudentSpec.load(out)
    # the budget is searched by measurement and may be loosened above the target: what must
    # fit is the student's measured latency (exit 3 says it could not on a busy machine)
    assert spec.provenance.notes["at_profile_speed_ms"] <= target or r.returncode == 3
    assert spec.provenance.measured_ms > 0
    notes = spec.provenance.notes  # timed beside the teacher, scaled to the profile's speed
    assert notes["at_profile_speed_ms"] == pytest.approx(notes["ratio_to_teacher"] * designer.full_ms)
    # the ratio is the median of the pairs' ratios, near the ratio of the medians
    assert notes["ratio_to_teacher"] == pytest.approx(
        spec.provenance.measured_ms / notes["teacher_measured_beside_ms"], rel=0.3)
    optimal = {n: prof.slot_curve("wrn_16_1@3x32x32", n).optimal() for n in prof.networks["wrn_16_1@3x32x32"]["slots"]}
    assert all(spec.widths[n] in optimal[n] for n in optimal)
    for s in ("s-l1", "s-uniform"):  # matched by measurement to the student's judged latency
        notes = StudentSpec.load(out.parent / f"{s}.json").provenance.notes
        assert notes["matched_to_ms"] == pytest.approx(spec.provenance.notes["at_profile_speed_ms"])
        assert 1 <= len(notes["match_tries"]) <= 5
        assert notes["at_profile_speed_ms"] == min((ms for _, ms in notes["match_tries"]),
                                                   key=lambda ms: abs(ms - notes["matched_to_ms"]))
    assert predict(prof, "wrn_16_1@3x32x32", {n: spec.widths[n] for n in optimal}).median_ms == pytest.approx(
        spec.provenance.predicted_ms)


def test_snap_given_widths_without_measuring(profiled, tmp_path, run_cli):
    from staircase.spec import StudentSpec

    widths = tmp_path / "w.json"
    widths.write_text(json.dumps({"widths": {"block1.layer.0.conv1": 11, "block3.layer.1.conv1": 37}}))
    out = tmp_path / "snapped.json"
    r = run_cli("design", "wrn_16_1", "--profile", str(profiled), "--widths", str(widths), "--snap", "up",
                "--out", str(out), "--no-measure")
    assert r.returncode == 0, r.stderr
    spec = StudentSpec.load(out)
    assert spec.widths["block1.layer.0.conv1"] >= 11 and spec.widths["block3.layer.1.conv1"] >= 37
    assert spec.provenance.measured_ms is None and "snapped up" in spec.provenance.method


def test_snapping_up_spends_what_alignment_saves_on_more_channels(profiled):
    from staircase.design.designer import Designer
    from staircase.modelref import resolve_model
    from staircase.profile.network import snap_slot
    from staircase.profile.store import Profile

    prof = Profile.load(profiled)
    net = "wrn_16_1@3x32x32"
    given = {n: info["width"] // 2 - 1 for n, info in prof.networks[net]["slots"].items()}  # off every block
    each = {n: snap_slot(prof, net, n, w, "up") for n, w in given.items()}
    for misalignment in (0.0, 0.3):
        prof.networks[net]["calibration"] = {"scale": 1.0, "misalignment": misalignment, "block": 4}
        designer = Designer(prof, resolve_model("wrn_16_1"), log=lambda m: None)
        params = Saliency.from_parameters(designer.graph, designer.slots)
        up = designer.snapped(given, "up")
        assert all(up[n] >= each[n] >= given[n] for n in given)
        assert all(up[n] == each[n] or up[n] in designer.optimal[n] for n in given)
        # no more time than the given widths, or than the slot-by-slot step-up where its noise
        # allowance (within 1% of a slot's time) made that dearer
        assert designer.predicted(up) <= max(designer.predicted(given), designer.predicted(each)) + 1e-9
        assert params.total(up) >= params.total(each)
    # off-block widths priced far above what the channels cost: every slot can afford its full width
    prof.networks[net]["calibration"] = {"scale": 1.0, "misalignment": 5.0, "block": 4}
    designer = Designer(prof, resolve_model("wrn_16_1"), log=lambda m: None)
    assert designer.snapped(given, "up") == {n: info["width"] for n, info in prof.networks[net]["slots"].items()}
    assert designer.snapped(given, "nearest") == {n: snap_slot(prof, net, n, w) for n, w in given.items()}


def test_design_bad_inputs_name_the_problem(profiled, tmp_path, run_cli):
    widths = tmp_path / "w.json"
    widths.write_text(json.dumps({"layer9.conv": 3}))
    r = run_cli("design", "wrn_16_1", "--profile", str(profiled), "--widths", str(widths), "--out",
                str(tmp_path / "x.json"), "--no-measure")
    assert r.returncode == 1 and "layer9.conv" in r.stderr and "another model" in r.stderr
    r = run_cli("design", "wrn_16_1", "--profile", str(profiled), "--target-ms", "0.0001", "--out",
                str(tmp_path / "x.json"), "--no-measure")
    assert r.returncode == 1 and "smallest latency reachable" in r.stderr
    r = run_cli("design", "resnet20", "--profile", str(profiled), "--target-ms", "1", "--out",
                str(tmp_path / "x.json"), "--no-measure")
    assert r.returncode == 1 and "does not cover resnet20" in r.stderr


@pytest.mark.parametrize("bias", [0.8, 1.25])
def test_design_for_target_searches_the_budget_by_measurement(profiled, bias, monkeypatch):
    """A machine that runs students 0.8x or 1.25x of their prediction: the designer ends with a
    student that fits the target, as wide as its measurements allow (one that fits after a
    tighter try, or fills the room a pessimistic prediction left)."""
    from staircase.design.designer import Designed, Designer, Saliency
    from staircase.modelref import resolve_model
    from staircase.profile.store import Profile
    from staircase.spec import Provenance, StudentSpec

    # the fixture's op keys and widths, with noise-free steps of 8 channels (a busy machine
    # may have measured no steps at all)
    prof = Profile.load(profiled)
    network = "wrn_16_1@3x32x32"
    for entry in prof.ops.values():
        entry["rounds"] = {w: [{"median_ms": 0.01 + 0.02 * -(-w // 8), "iqr_ms": 0.0, "n": 9, "noisy": False,
                                "samples": 9}] for w in entry["rounds"]}
    prof._curves.clear()
    prof.networks[network].pop("calibration", None)
    prof.networks[network]["full"] = {"median_ms": 1.0 + sum(prof.curve(k).median_ms[-1] for k in prof.ops),
                                      "spread_ms": 0.0}
    designer = Designer(prof, resolve_model("wrn_16_1"), log=lambda m: None)

    def student(widths, name, method, saliency=None, measure=True, notes=None):
        predicted = designer.predicted(widths)
        spec, _ = StudentSpec.create(designer.arch, dict(widths), name,
                                     Provenance(method=method, predicted_ms=predicted, notes=dict(notes or {})))
        return Designed(spec, predicted, predicted * bias, 0.0, None, at_profile_ms=predicted * bias)

    monkeypatch.setattr(designer, "student", student)
    saliency = Saliency.from_parameters(designer.graph, designer.slots)
    target = designer.smallest_ms() + 0.6 * (designer.full_ms - designer.smallest_ms())
    d = designer.design_for_target(target, saliency, "s", "test")
    tries = d.spec.provenance.notes["design_tries"]
    assert d.met and d.judged_ms <= target
    assert len(tries) == d.attempts and d.judged_ms == max(ms for _, ms in tries if ms <= target)
    if bias > 1:  # the first design missed: the budget was tightened
        assert tries[0][1] > target and tries[1][0] < tries[0][0]
    else:  # the first design fitted with room left: the budget was loosened, and a wider one kept
        assert tries[0][1] < 0.97 * target and tries[1][0] > tries[0][0] and d.judged_ms >= tries[0][1]
