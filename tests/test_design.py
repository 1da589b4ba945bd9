import itertools
import json
import random

import pytest
from helpers import one_line_error

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
    """A quick profile (a busy machine may find few steps in it: the CLI tests on it pass
    --allow-few-steps; the refusal has its own test)."""
    from staircase.profile.backends import get_backend
    from staircase.profile.sweep import profile_network

    path = tmp_path_factory.mktemp("prof") / "p.json"
    profile_network("wrn_16_1", get_backend("torch", threads=1), path, grid=4, rounds=1, timing="quick",
                    progress=False, log=lambda m: None)
    return path


@pytest.mark.slow
@pytest.mark.backend
def test_design_for_a_target_writes_a_measured_student_and_baselines(profiled, tmp_path, run_cli):
    """The real-timing path, through the CLI (the scripted tests below check the search itself)."""
    from staircase.design.designer import Designer
    from staircase.modelref import resolve_model
    from staircase.profile.prediction import LatencyModel
    from staircase.profile.store import Profile
    from staircase.spec import StudentSpec

    prof = Profile.load(profiled)
    designer = Designer(prof, resolve_model("wrn_16_1"))
    target = (designer.smallest_ms() + designer.teacher_ms) / 2  # on a busy machine the steps may be few
    out = tmp_path / "students" / "s.json"
    r = run_cli("design", "wrn_16_1", "--profile", str(profiled), "--allow-few-steps", "--target-ms", f"{target}", "--baselines",
                "--out", str(out), "--json")
    assert r.returncode in (0, 3), r.stderr
    result = json.loads(r.stdout)
    names = [s["student"] for s in result["students"]]
    assert names == ["s", "s-l1", "s-l1-round", "s-uniform"]
    spec = StudentSpec.load(out)
    notes = spec.provenance.notes  # timed beside the teacher, scaled to the profile's speed
    if r.returncode == 0:
        assert notes["at_profile_speed_ms"] <= target
    else:  # exit 3 says the closest design measured over the target, and by how much
        assert "over the target" in r.stderr and notes["missed_by_ms"] > 0
    # a miss is the closest of the designs measured, a fit the widest that fits (their order
    # is the design loop's contract; where they land depends on how busy the machine is)
    measured = [ms for _, ms in notes["design_tries"]]
    fits = [ms for ms in measured if ms <= target]
    assert notes["at_profile_speed_ms"] == (max(fits) if fits else min(measured))
    assert spec.provenance.measured_ms > 0
    assert notes["at_profile_speed_ms"] == pytest.approx(notes["ratio_to_teacher"] * designer.teacher_ms)
    # the ratio is the median of the pairs' ratios, near the ratio of the medians
    assert notes["ratio_to_teacher"] == pytest.approx(
        spec.provenance.measured_ms / notes["teacher_measured_beside_ms"], rel=0.3)
    optimal = designer.optimal
    assert all(spec.widths[n] in optimal[n] for n in optimal)
    for s in ("s-l1", "s-l1-round", "s-uniform"):  # matched by measurement to the student's judged latency
        notes = StudentSpec.load(out.parent / f"{s}.json").provenance.notes
        assert notes["matched_to_ms"] == pytest.approx(spec.provenance.notes["at_profile_speed_ms"])
        assert 1 <= len(notes["match_tries"]) <= 5
        assert notes["at_profile_speed_ms"] == min((ms for _, ms in notes["match_tries"]),
                                                   key=lambda ms: abs(ms - notes["matched_to_ms"]))
    predicted = LatencyModel(prof, "wrn_16_1@3x32x32").predict({n: spec.widths[n] for n in optimal}).median_ms
    assert predicted == pytest.approx(spec.provenance.predicted_ms)


@pytest.mark.slow
def test_snap_given_widths_without_measuring(profiled, tmp_path, run_cli):
    from staircase.spec import StudentSpec

    widths = tmp_path / "w.json"
    widths.write_text(json.dumps({"widths": {"block1.layer.0.conv1": 11, "block3.layer.1.conv1": 37}}))
    out = tmp_path / "snapped.json"
    for mode in ("up", "fill"):  # up: slot by slot; fill: for the whole network
        r = run_cli("design", "wrn_16_1", "--profile", str(profiled), "--allow-few-steps", "--widths", str(widths),
                    "--snap", mode, "--out", str(out), "--no-measure")
        # nothing said but, on a profile a busy machine left with few steps, that it designs on it
        assert r.returncode == 0 and all("designing on it as asked" in line for line in r.stderr.splitlines()), r.stderr
        spec = StudentSpec.load(out)
        assert spec.widths["block1.layer.0.conv1"] >= 11 and spec.widths["block3.layer.1.conv1"] >= 37
        assert spec.provenance.measured_ms is None and f"snapped {mode}" in spec.provenance.method


def test_filling_up_spends_what_alignment_saves_on_more_channels(profiled):
    from staircase.design.designer import Designer
    from staircase.modelref import resolve_model
    from staircase.profile.prediction import LatencyModel
    from staircase.profile.store import Calibration, Profile

    prof = Profile.load(profiled)
    net = "wrn_16_1@3x32x32"
    latency = LatencyModel(prof, net)
    given = {n: full // 2 - 1 for n, full in latency.slots.items()}  # off every alignment
    each = {n: latency.snap(n, w, "up") for n, w in given.items()}
    for misalignment in (0.0, 0.3):
        prof.networks[net].calibration = Calibration(scale=1.0, misalignment=misalignment, alignment=4)
        designer = Designer(prof, resolve_model("wrn_16_1"))
        params = Saliency.from_parameters(designer.graph, designer.slots)
        assert designer.snapped(given, "up") == each  # up: slot by slot
        up = designer.snapped(given, "fill")
        assert all(up[n] >= each[n] >= given[n] for n in given)
        assert all(up[n] == each[n] or up[n] in designer.optimal[n] for n in given)
        # no more time than the given widths, or than the slot-by-slot step-up where its noise
        # allowance (within 1% of a slot's time) made that dearer
        assert designer.predicted(up) <= max(designer.predicted(given), designer.predicted(each)) + 1e-9
        assert params.total(up) >= params.total(each)
    # off-block widths priced far above what the channels cost: every slot can afford its full width
    prof.networks[net].calibration = Calibration(scale=1.0, misalignment=5.0, alignment=4)
    designer = Designer(prof, resolve_model("wrn_16_1"))
    assert designer.snapped(given, "fill") == latency.slots
    assert designer.snapped(given, "nearest") == {n: latency.snap(n, w) for n, w in given.items()}


@pytest.mark.slow
def test_design_bad_inputs_name_the_problem(profiled, tmp_path, run_cli):
    widths = tmp_path / "w.json"
    widths.write_text(json.dumps({"layer9.conv": 3}))
    r = run_cli("design", "wrn_16_1", "--profile", str(profiled), "--allow-few-steps", "--widths", str(widths), "--out",
                str(tmp_path / "x.json"), "--no-measure")
    assert r.returncode == 1 and "layer9.conv" in r.stderr and "another model" in r.stderr
    r = run_cli("design", "wrn_16_1", "--profile", str(profiled), "--allow-few-steps", "--target-ms", "0.0001", "--out",
                str(tmp_path / "x.json"), "--no-measure")  # below the steps' fastest network: that one, a miss
    assert r.returncode == 3 and "is below the fastest network this profile's steps reach" in r.stdout
    assert "the closest design is predicted at" in r.stderr and (tmp_path / "x.json").exists()
    r = run_cli("design", "resnet20", "--profile", str(profiled), "--target-ms", "1", "--out",
                str(tmp_path / "x.json"), "--no-measure")
    assert r.returncode == 1 and "does not cover resnet20" in r.stderr


def _scripted(profiled):
    """The fixture's network with noise-free steps of 8 channels (a busy machine may have
    measured no steps at all), no calibration, and a designer for it."""
    from staircase.design.designer import Designer
    from staircase.modelref import resolve_model
    from staircase.profile.store import FullTime, Profile

    prof = Profile.load(profiled)
    network = "wrn_16_1@3x32x32"
    for key, entry in prof.ops.items():
        rounds = {w: [{"median_ms": 0.01 + 0.02 * -(-w // 8), "iqr_ms": 0.0, "n": 9, "noisy": False, "samples": 9}]
                  for w in entry["rounds"]}
        entry["rounds"] = {}
        for w, (m,) in rounds.items():
            prof.add_round(key, entry["op"], w, m, journal=False)
    prof.networks[network].calibration = None
    prof.networks[network].full = FullTime(1.0 + sum(prof.curve(k).median_ms[-1] for k in prof.ops), 0.0)
    return Designer(prof, resolve_model("wrn_16_1"))


def _scripted_measure(designer, bias: float, calls: list | None = None):
    """A machine that runs every network ``bias`` x its prediction, beside a teacher at the
    profile's speed (what ``BesideTeacher`` returns on a real backend)."""
    from staircase.design.measured import Timed
    from staircase.slots import slot_widths

    def measure(model):
        widths = {n: w for n, w in slot_widths(model, designer.arch.input_size).items() if n in designer.optimal}
        ms = designer.predicted(widths) * bias
        if calls is not None:
            calls.append(widths)
        return Timed(ms, 0.0, designer.teacher_ms, ms / designer.teacher_ms, ms)

    return measure


@pytest.mark.parametrize("bias", [0.8, 1.25])
def test_design_for_target_searches_the_budget_by_measurement(profiled, bias):
    """A machine that runs students 0.8x or 1.25x of their prediction: the designer ends with a
    student that fits the target, as wide as its measurements allow (one that fits after a
    tighter try, or fills the room a pessimistic prediction left)."""
    from staircase.design.measured import fit_to_target

    designer = _scripted(profiled)
    saliency = Saliency.from_parameters(designer.graph, designer.slots)
    target = designer.smallest_ms() + 0.6 * (designer.teacher_ms - designer.smallest_ms())
    d = fit_to_target(designer, target, saliency, "s", "test", _scripted_measure(designer, bias), log=lambda m: None)
    tries = d.spec.provenance.notes["design_tries"]
    assert d.met and d.judged_ms <= target
    assert len(tries) == d.attempts and d.judged_ms == max(ms for _, ms in tries if ms <= target)
    if bias > 1:  # the first design missed: the budget was tightened
        assert tries[0][1] > target and tries[1][0] < tries[0][0]
    else:  # the first design fitted with room left: the budget was loosened, and a wider one kept
        assert tries[0][1] < 0.97 * target and tries[1][0] > tries[0][0] and d.judged_ms >= tries[0][1]


def test_design_with_baselines_matches_every_baseline_to_the_students_measured_latency(profiled):
    """On a scripted machine (1.1x the prediction): the student fits its target, and each
    baseline is the member of its family measured nearest the student."""
    from staircase.design.measured import design_with_baselines

    designer = _scripted(profiled)
    target = designer.smallest_ms() + 0.5 * (designer.teacher_ms - designer.smallest_ms())
    designed = design_with_baselines(designer, "s", target_ms=target, baselines=True,
                               measure=_scripted_measure(designer, 1.1), log=lambda m: None)
    student, *baselines = designed
    assert [d.spec.name for d in designed] == ["s", "s-l1", "s-l1-round", "s-uniform"]
    assert student.met and student.judged_ms <= target
    assert all(student.spec.widths[n] in designer.optimal[n] for n in designer.optimal)
    for d in baselines:
        notes = d.spec.provenance.notes
        assert notes["matched_to_ms"] == student.judged_ms
        assert 1 <= len(notes["match_tries"]) <= 5
        assert d.judged_ms == min((ms for _, ms in notes["match_tries"]), key=lambda ms: abs(ms - student.judged_ms))


def test_baselines_timed_together_with_the_student_are_matched_by_their_per_pass_time_over_it(profiled):
    """Matched separately (a scripted machine at 1.1x the prediction), then timed together with
    the student in the same passes: a baseline that ran 6% slower than the student there is
    unmatched, whatever its own measurements said; a disturbed pass slowing all alike moves
    no quotient."""
    from staircase.design.measured import RatioInterval, design_with_baselines

    designer = _scripted(profiled)
    target = designer.smallest_ms() + 0.5 * (designer.teacher_ms - designer.smallest_ms())
    slower = {"s": 1.0, "s-l1": 0.99, "s-l1-round": 1.06, "s-uniform": 1.02}
    seen = []

    def together(networks):
        seen.append(list(networks))
        passes = [0.5, 0.5, 0.9, 0.5, 0.5, 0.5, 0.5]  # the third pass disturbed, for every network
        return {name: RatioInterval(0.5 * slower[name], 0.5 * slower[name], 0.9 * slower[name],
                                    [p * slower[name] for p in passes]) for name in networks}

    student, *baselines = design_with_baselines(designer, "s", target_ms=target, baselines=True,
                                                measure=_scripted_measure(designer, 1.1), log=lambda m: None,
                                                together=together)
    assert seen == [["s", "s-l1", "s-l1-round", "s-uniform"]]  # one measurement run for all of them
    assert student.spec.provenance.notes["together"]["passes"][2] == 0.9
    for d in baselines:
        notes = d.spec.provenance.notes
        assert notes["over_student"]["ratio"] == pytest.approx(slower[d.spec.name])
        assert notes["over_student"]["ci95"] == pytest.approx([slower[d.spec.name]] * 2)
        assert notes["matched"] is (d.spec.name != "s-l1-round")


def test_a_design_without_measure_is_predicted_only(profiled):
    from staircase.design.measured import fit_to_target

    designer = _scripted(profiled)
    target = designer.smallest_ms() + 0.5 * (designer.teacher_ms - designer.smallest_ms())
    saliency = Saliency.from_parameters(designer.graph, designer.slots)
    d = fit_to_target(designer, target, saliency, "s", "test", None)
    assert d.measured_ms is None and d.at_profile_ms is None and d.spec.provenance.measured_ms is None
    assert d.predicted_ms <= target


def test_design_for_a_target_with_no_measure_times_nothing(profiled, tmp_path, run_cli):
    from staircase.design.designer import Designer
    from staircase.modelref import resolve_model
    from staircase.profile.store import Profile
    from staircase.spec import StudentSpec

    designer = Designer(Profile.load(profiled), resolve_model("wrn_16_1"))
    target = (designer.smallest_ms() + designer.teacher_ms) / 2
    r = run_cli("design", "wrn_16_1", "--profile", str(profiled), "--allow-few-steps", "--target-ms", f"{target}", "--no-measure",
                "--out", str(tmp_path / "s.json"))
    assert r.returncode == 0, r.stderr
    spec = StudentSpec.load(tmp_path / "s.json")
    assert spec.provenance.measured_ms is None and "at_profile_speed_ms" not in spec.provenance.notes
    assert spec.provenance.predicted_ms <= target


def test_a_baseline_that_cannot_reach_the_students_latency_is_marked_unmatched(profiled):
    """A machine on which every network off the optimal widths runs ten times the teacher:
    no member of the L1 or uniform families gets within 3% of the student."""
    from staircase.design.measured import Timed, design_with_baselines
    from staircase.slots import slot_widths

    designer = _scripted(profiled)
    teacher_ms = designer.teacher_ms

    def measure(model):
        widths = {n: w for n, w in slot_widths(model, designer.arch.input_size).items() if n in designer.optimal}
        on_steps = all(w in designer.optimal[n] for n, w in widths.items())
        ms = designer.predicted(widths) if on_steps else 10 * teacher_ms
        return Timed(ms, 0.0, teacher_ms, ms / teacher_ms, ms)

    target = designer.smallest_ms() + 0.5 * (teacher_ms - designer.smallest_ms())
    student, *baselines = design_with_baselines(designer, "s", target_ms=target, baselines=True, measure=measure,
                                          log=lambda m: None)
    assert student.met
    off_steps = [d for d in baselines if not all(w in designer.optimal[n] for n, w in d.spec.widths.items()
                                                 if n in designer.optimal)]
    assert off_steps  # (a member that happens to sit on the steps is measured like the student)
    for d in off_steps:
        assert d.spec.provenance.notes["matched"] is False and d.judged_ms == 10 * teacher_ms


def test_no_slot_is_designed_below_the_minimum_width_and_the_design_says_which_hit_it(profiled):
    from staircase.design.designer import Designer
    from staircase.modelref import resolve_model

    scripted = _scripted(profiled)  # steps every 8 channels
    prof = scripted.profile
    assert scripted.min_widths == {n: min(w, prof.network_step(scripted.network) or 1) for n, w in scripted.latency.slots.items()}
    loose = Designer(prof, resolve_model("wrn_16_1"), min_width=1)
    tight = Designer(prof, resolve_model("wrn_16_1"), min_width=16)
    assert tight.smallest_ms() > loose.smallest_ms()
    saliency = Saliency.from_parameters(tight.graph, tight.slots)
    widths = tight.for_target(tight.smallest_ms(), saliency)
    assert all(w >= min(16, full) for w, full in zip(widths.values(), tight.latency.slots.values(), strict=True))
    assert set(tight.at_minimum(widths)) == {n for n, w in widths.items() if w == 16 < tight.latency.slots[n]}
    assert tight.at_minimum(widths)  # the fastest design holds some slot at the minimum
    assert all(w >= 16 for w in tight.snapped({n: 1 for n in widths}, "nearest").values())
    with pytest.raises(StaircaseError, match="--min-width 0 must be at least 1"):
        Designer(prof, resolve_model("wrn_16_1"), min_width=0)


def test_a_profile_that_found_too_few_steps_is_not_designed_on(profiled, tmp_path, run_cli):
    from staircase.profile.prediction import LatencyModel
    from staircase.profile.store import Profile

    prof = Profile.load(profiled)
    for key, entry in prof.ops.items():  # every width costs the same: no slot shows a step
        rounds = {w: [{"median_ms": 0.05, "iqr_ms": 0.0, "n": 9, "noisy": False, "samples": 9}] for w in entry["rounds"]}
        entry["rounds"] = {}
        for w, (m,) in rounds.items():
            prof.add_round(key, entry["op"], w, m, journal=False)
    flat = tmp_path / "flat.json"
    prof.path = flat
    prof.save()
    latency = LatencyModel(Profile.load(flat), "wrn_16_1@3x32x32")
    assert sorted(latency.flat_slots()) == sorted(latency.slots) and "--timing careful" in latency.few_steps()
    one_line_error(run_cli("design", "wrn_16_1", "--profile", str(flat), "--target-share", "0.9", "--no-measure",
                           "--out", str(tmp_path / "s.json")), "falls with width in only 0 of 6 slots", "--allow-few-steps")
    assert not (tmp_path / "s.json").exists()


def test_a_proportional_search_stops_at_the_narrowest_proportional_student(profiled):
    """A machine 1.5x slower than predicted, a target just above the narrowest proportional
    student: the search tightens, never asks for a budget the proportions cannot reach, and
    returns the closest design it measured, marked as missing."""
    from staircase.design.measured import design_with_baselines

    designer = _scripted(profiled)
    for t in (0.0, 0.3, 0.55, 0.8, 1.0):  # every slot on the staircase, never under uniform scaling's width
        widths = designer.proportional(t)
        assert all(w in designer.optimal[n] for n, w in widths.items())
        assert all(w >= min(round(t * full), designer.optimal[n][-1]) for (n, w), full
                   in zip(widths.items(), designer.latency.slots.values(), strict=True))
    floor = designer.smallest_proportional_ms()
    assert floor == pytest.approx(designer.predicted(designer.proportional(0.0)))
    calls = []
    (student,) = design_with_baselines(designer, "s", target_ms=1.05 * floor, measure=_scripted_measure(designer, 1.5, calls),
                                 log=lambda m: None)
    assert student.spec.provenance.notes["allocation"] == "proportional"  # the default without saliency
    assert not student.met and student.spec.provenance.notes["missed_by_ms"] > 0
    assert len(calls) == 1  # the one design above the floor; nothing narrower to try
    with pytest.raises(StaircaseError, match="smallest latency reachable"):
        designer.proportional_for(0.9 * floor)


def test_a_ramp_profile_is_designed_down_to_half_the_teacher_and_filled_to_its_target(profiled):
    """Every op's time grows linearly with its width (no step at all, as on resnet18's wide
    slots at 64x64): every multiple of the lattice is usable, and a student for half the
    teacher's latency is found without overriding anything, within 3% under its target."""
    from staircase.design.designer import Designer
    from staircase.design.measured import design_with_baselines
    from staircase.modelref import resolve_model
    from staircase.profile.store import FullTime, Profile

    prof = Profile.load(profiled)
    network = "wrn_16_1@3x32x32"
    for key, entry in prof.ops.items():  # measured at every width
        full = max(entry["rounds"])
        entry["rounds"] = {}
        for w in range(1, full + 1):
            prof.add_round(key, entry["op"], w, {"median_ms": 0.01 + 0.002 * w, "iqr_ms": 0.0, "n": 9,
                                                 "noisy": False, "samples": 9}, journal=False)
    prof.networks[network].grid = 1
    prof.networks[network].calibration = None
    prof.networks[network].full = FullTime(0.05 + sum(prof.curve(k).median_ms[-1] for k in prof.ops), 0.0)
    designer = Designer(prof, resolve_model("wrn_16_1"))
    assert not designer.latency.flat_slots() and designer.latency.few_steps() is None
    for slot, full in designer.latency.slots.items():
        assert designer.optimal[slot] == list(range(designer.min_widths[slot], full + 1))  # every width
    for bias in (1.0, 1.15):
        target = 0.5 * designer.teacher_ms
        (student,) = design_with_baselines(designer, "s", target_ms=target, measure=_scripted_measure(designer, bias),
                                     log=lambda m: None)
        assert student.met and 0.97 * target <= student.judged_ms <= target, (bias, student.judged_ms / target)


def test_a_target_design_keeps_the_most_fisher_saliency_given_it_else_the_teachers_proportions():
    from types import SimpleNamespace

    from staircase.design.allocations import default_allocation

    assert default_allocation(SimpleNamespace(saliency={"a": [1.0, 0.5]})) == "fisher"
    assert default_allocation(SimpleNamespace(saliency={})) == "proportional"  # widths only: nothing to keep most of
    assert default_allocation(None) == "proportional"
