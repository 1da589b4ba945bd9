"""The experiment's fairness rules and verdicts (scripts/reproduce_cifar.py), on hand-made rows."""

import re

import pytest
from helpers import load_script

REPRO = load_script("reproduce_cifar")


@pytest.fixture(scope="module")
def repro():
    return REPRO


def _row(method, top1, seed, ratio=0.5, init="teacher", target=0.5, epochs=3, correct=None, run="t50-a"):
    row = {"method": method, "design": method, "init": init, "target": target, "seed": seed, "epochs": epochs,
           "train_minutes": 1.0, "ratio": ratio, "ratio_ci95": [ratio * 0.98, ratio * 1.02], "measurement": run,
           "ratio_passes": [ratio * (1 + 0.01 * (i % 3)) for i in range(6)], "params": 1000, "val_top1": top1,
           "top1": top1}
    if correct is not None:
        row.update(correct=REPRO.pack_correct(correct), images=len(correct))
    return row


def _runs(method, accuracy, seeds=3, images=600, ratio=0.5, shared=None, **kw):
    """Rows whose per-image correctness gets ``accuracy`` of the images right, mostly the
    same images across methods (``shared``: each image's difficulty)."""
    import zlib

    import numpy as np

    rng = np.random.default_rng(zlib.crc32(f"{method} {accuracy}".encode()))
    difficulty = shared if shared is not None else np.linspace(0, 1, images)
    rows = []
    for seed in range(seeds):
        correct = (difficulty + rng.normal(0, 0.05, images)) < accuracy
        rows.append(_row(method, 100 * correct.mean(), seed, ratio=ratio, correct=correct.tolist(), **kw))
    return rows


def test_every_allocation_and_baseline_is_designed_and_scratch_trains_default_copycat_uniform(repro):
    from staircase.design.allocations import ALLOCATIONS

    assert {f"staircase-{a}" for a in ALLOCATIONS} | {"uniform", "l1-round", "fisher"} == set(repro.DESIGNS)
    assert repro.FROM_SCRATCH == ("default", "fisher", "uniform")


def test_the_row_of_the_chosen_default_allocation_is_labelled_staircase(repro):
    assert [repro.method_of(d, "teacher", "l1") for d in ("staircase-l1", "staircase-fisher", "fisher")] == \
        ["staircase", "staircase-fisher", "fisher"]
    assert [repro.method_of(d, "scratch", "fisher") for d in ("staircase-fisher", "fisher", "uniform")] == \
        ["staircase", "copycat", "uniform"]


def test_a_rival_is_at_the_default_students_latency_within_3_percent_pass_by_pass():
    from staircase.design.measured import no_slower, time_over

    assert no_slower(1.029) and no_slower(0.8)  # faster only gives latency away
    assert not no_slower(1.04)
    # both slowed alike in the disturbed passes: the quotient holds
    mine = [0.35, 0.35, 0.41, 0.41, 0.35, 0.41]
    q = time_over([1.02 * x for x in mine], mine)
    assert q.ratio == pytest.approx(1.02) and q.low == pytest.approx(1.02) and q.high == pytest.approx(1.02)
    assert q.passes == pytest.approx([1.02] * 6)


def _latency(target, run, ratios):
    return {"run": run, "passes": 5, "backend": "onnxruntime",
            "networks": {d: {"widths": "x", "ratio": r, "ci95": [r * 0.98, r * 1.02], "passes": [r] * 6}
                         for d, r in ratios.items()}}


def test_rows_of_a_design_made_again_are_dropped_and_the_others_take_the_current_measurement(repro):
    from types import SimpleNamespace

    specs = {0.5: {"staircase-l1": SimpleNamespace(params=1000, widths={"a": 8}),
                   "uniform": SimpleNamespace(params=2000, widths={"a": 16})}}
    rows = [dict(_row("staircase-l1", 60.0, 0, run="t50-old"), widths={"a": 8}),
            dict(_row("uniform", 61.0, 0, run="t50-old"), widths={"a": 24}),  # a design made again since
            dict(_row("fisher", 50.0, 0), widths={"a": 8})]  # no design kept for it
    latency = {"0.5": _latency(0.5, "t50-new", {"staircase-l1": 0.53, "uniform": 0.5})}
    kept = repro.current_rows(rows, specs, latency)
    assert [r["top1"] for r in kept] == [60.0]
    assert kept[0]["measurement"] == "t50-new" and kept[0]["ratio"] == 0.53 and kept[0]["ratio_passes"] == [0.53] * 6
    assert kept[0]["ratio_ci95"] == pytest.approx([0.53 * 0.98, 0.53 * 1.02])


def test_the_teacher_is_accepted_only_once_its_validation_top1_stopped_rising(repro):
    def curve(values):
        return [{"epoch": i + 1, "val_top1": v, "train_loss": 1.0, "lr": 0.1} for i, v in enumerate(values)]

    rising = repro.plateau(curve([50 + i + (0.3 if i % 2 else 0) for i in range(30)]))
    assert not rising["plateaued"] and rising["window"] == 3 and rising["rise"] == pytest.approx(3.1, abs=0.2)
    assert rising["ci95"][0] > 0 and "still rising" in rising["reason"]
    # a plateau whose last epochs happen to sit an image or two higher: no detectable rise
    flat = repro.plateau(curve([70.0] * 20 + [70.6, 70.4, 71.0, 70.2, 70.6, 70.6, 70.6, 70.4, 71.9, 71.7, 71.9, 71.2]))
    assert flat["rise"] > 0.5 and flat["plateaued"] and "stopped rising" in flat["reason"]
    assert not repro.plateau(curve([60.0] * 5))["plateaued"]  # too short to tell


def test_a_verdict_says_won_only_when_its_interval_excludes_zero(repro):
    rows = _runs("staircase", 0.70) + _runs("uniform", 0.55) + _runs("l1-round", 0.70)
    found = {v["rival"]: v for v in repro.verdicts(rows)}
    assert found["uniform"]["verdict"] == "won" and found["uniform"]["ci95"][0] > 0
    assert found["uniform"]["test"] == repro.BOOTSTRAP_TEST and found["uniform"]["seeds"] == [3, 3]
    tie = found["l1-round"]
    assert tie["verdict"] == "no detectable difference" and tie["ci95"][0] <= 0 <= tie["ci95"][1]
    lines = repro.verdict_lines(list(found.values()))
    assert any("against l1-round" in line and "no detectable difference" in line and "600 test images" in line
               for line in lines)
    lost = {v["rival"]: v for v in repro.verdicts(_runs("staircase", 0.5) + _runs("uniform", 0.7))}
    assert lost["uniform"]["verdict"] == "lost" and lost["uniform"]["ci95"][1] < 0


def test_a_rival_slower_than_the_default_or_without_per_image_results_is_not_compared(repro):
    rows = _runs("staircase", 0.6) + _runs("uniform", 0.8, ratio=0.56)  # 12% slower than the default student
    rows += [_row("fisher", 61.0, s) for s in range(3)]  # no per-image results
    found = {v["rival"]: v for v in repro.verdicts(rows)}
    assert found["uniform"]["difference"] is None
    assert "took 1.120x the default student's time" in found["uniform"]["verdict"]
    assert "more than 3% slower" in found["uniform"]["verdict"]
    assert found["fisher"]["difference"] is None and "without per-image results" in found["fisher"]["verdict"]
    faster = {v["rival"]: v for v in repro.verdicts(_runs("staircase", 0.6) + _runs("uniform", 0.6, ratio=0.4))}
    assert faster["uniform"]["difference"] is not None  # faster only gave latency away: compared


def test_networks_timed_in_two_measurement_runs_are_not_compared(repro):
    rows = _runs("staircase", 0.7) + [dict(r, measurement="t50-b") for r in _runs("uniform", 0.5)]
    (v,) = repro.verdicts(rows)
    assert v["difference"] is None and "different measurement runs (t50-a, t50-b)" in v["verdict"]


def test_correctness_round_trips_through_a_row(repro):
    correct = [True, False, False, True, True, True, False, True, True, False, True]
    assert repro.unpack_correct(repro.pack_correct(correct), len(correct)).tolist() == correct


def test_an_exact_tie_reads_tie(repro):
    same = _runs("staircase", 0.6)
    twin = [dict(r, method="uniform", design="uniform") for r in same]
    found = repro.verdicts(same + twin)
    assert found[0]["verdict"] == "tie" and found[0]["difference"] == 0
    assert found[0]["ci95"][0] <= 0 <= found[0]["ci95"][1]


def _candidate(correct, **kw):
    import numpy as np

    correct = np.asarray(correct, dtype=bool)
    return {**kw, "top1": 100 * correct.mean(), "images": len(correct), "correct": REPRO.pack_correct(correct.tolist())}


def test_validation_keeps_the_fewest_epochs_unless_more_are_detectably_better(repro):
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.random(466) < 0.70
    a_little_better = base.copy()
    a_little_better[np.flatnonzero(~base)[:3]] = True  # 3 images more: within the noise
    far_better = base.copy()
    far_better[np.flatnonzero(~base)[:60]] = True  # 60 images more
    near = [_candidate(base, epochs=10, lr=0.01), _candidate(a_little_better, epochs=15, lr=0.01),
            _candidate(base[::-1], epochs=10, lr=0.03)]
    chosen = repro.choose_recipe(near)
    assert chosen["chosen"] == {"epochs": 10, "lr": 0.01} and "no detectable difference" in chosen["reason"]
    far = [_candidate(base, epochs=10, lr=0.01), _candidate(far_better, epochs=15, lr=0.01)]
    assert repro.choose_recipe(far)["chosen"] == {"epochs": 15, "lr": 0.01}


def test_the_default_allocation_is_the_highest_pooled_over_targets_and_says_how_sure(repro):
    import numpy as np

    rng = np.random.default_rng(1)
    cands = []
    for target in (0.35, 0.5):
        base = rng.random(400) < 0.6
        better = base | (rng.random(400) < 0.15)
        cands += [_candidate(base, allocation="fisher", target=target),
                  _candidate(better, allocation="proportional", target=target)]
    found = repro.choose_allocation(cands)
    assert found["chosen"] == "proportional"
    [vs] = found["comparisons"]
    assert vs["rival"] == "fisher" and vs["verdict"] == "won" and vs["ci95"][0] > 0
    assert "ahead of every other detectably" in found["reason"]


def test_the_committed_page_is_what_the_script_renders_from_the_committed_json(repro, tmp_path):
    import json
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    doc = json.loads((docs / "results_cifar.json").read_text())
    assert (docs / "RESULTS.md").read_text() == repro.render(doc, tmp_path)
    for computed, key in ((repro.verdicts, "verdicts"), (repro.starts, "starts")):
        again = json.loads(json.dumps(computed(doc["rows"])))
        assert len(again) == len(doc[key])
        for mine, theirs in zip(again, doc[key], strict=True):  # floats as another BLAS may sum them
            assert mine == {k: pytest.approx(v, rel=1e-9) if _numbers(v) else v for k, v in theirs.items()}


def _numbers(value) -> bool:
    """A float, or a list of numbers: what another BLAS may sum to other last digits."""
    if isinstance(value, list):
        return all(isinstance(x, (int, float)) for x in value)
    return isinstance(value, float)


def test_a_page_renders_every_stage_from_hand_made_json(repro, tmp_path):
    curve = [{"epoch": i + 1, "val_top1": 60.0 + (i % 2), "train_loss": 1.0, "lr": 0.1} for i in range(12)]
    rows = _runs("staircase", 0.7) + _runs("uniform", 0.55)
    doc = {"teacher": {"model": "wrn_16_2", "data": "cifar10:x", "epochs": 12, "curve": curve,
                       "plateau": repro.plateau(curve), "split": {"val_split": 0.1, "split_seed": 0}, "recipe": "r"},
           "latency": {"0.5": _latency(0.5, "t50-a", {"staircase-fisher": 0.49, "uniform": 0.56})},
           "teacher_test": {"top1": 71.0, "images": 600}, "rows": rows,
           "validation": {"allocation": {"chosen": "fisher"}},
           "settings": {"teacher": "wrn_16_2", "data": "cifar10:x", "teacher_top1": 71.0,
                        "default_allocation": "fisher"}}
    page = repro.render(doc, tmp_path)
    latency = page[page.index("## Latency"):page.index("## The students")]
    assert re.search(r"uniform .* 1\.143 \[1\.143, 1\.143\] +NO +t50-a", latency)
    assert "staircase against uniform" in page and "The teacher: 71.00% on the same 600 test images" in page
    assert (tmp_path / "results_cifar.png").exists()


def test_one_seed_on_a_side_gives_an_interval_but_no_verdict(repro):
    rows = _runs("staircase", 0.75, seeds=1) + _runs("uniform", 0.5, seeds=3)
    (v,) = repro.verdicts(rows)
    assert v["ci95"][0] > 0 and v["verdict"] == "not judged yet: fewer than 2 seeds on a side"


def test_a_design_trained_both_ways_is_judged_from_the_teacher_minus_from_scratch(repro):
    import numpy as np

    shared = np.linspace(0, 1, 600)
    inherited = _runs("staircase", 0.62, shared=shared, epochs=10)
    scratch = [dict(r, init="scratch", epochs=60) for r in _runs("staircase", 0.72, shared=shared)]
    alone = _runs("uniform", 0.6)  # trained one way only: not in the comparison
    (s,) = repro.starts(inherited + scratch + alone)
    assert s["design"] == "staircase" and s["epochs"] == [10, 60] and s["seeds"] == [3, 3]
    assert s["difference"] < 0 and s["ci95"][1] < 0 and s["verdict"] == "lost"
    (line,) = repro.start_lines([s])
    assert line.startswith("- 50%, staircase from the teacher (10 epochs, 1.0 min a run) against staircase from "
                           "scratch (60 epochs, 1.0 min): -") and ": lost (seeds 3 and 3, 600 test images)" in line
    (one,) = repro.starts(inherited + scratch[:1])
    assert one["verdict"] == "not judged yet: fewer than 2 seeds on a side" and one["ci95"] is not None


def test_the_page_says_how_many_of_the_planned_rows_are_made_whatever_part_a_session_trains(repro):
    from argparse import Namespace

    args = Namespace(targets=[0.35, 0.5, 0.7], scratch_targets=[0.5], seeds=[0, 1, 2, 3, 4], allocation_seeds=[0, 1],
                     scratch_seeds=[0, 1, 2], teacher_epochs=60, parts=["scratch"])
    choice = {"allocation": {"chosen": "fisher"}, "recipe": {"chosen": {"epochs": 10, "lr": 0.03}}}
    settings = repro.planned(repro._plan(args, choice), "fisher")
    assert settings["planned_rows"] == 3 * 4 * 5 + 3 * 3 * 2 + 1 * 3 * 3  # every part, not only this session's
    assert settings["seeds"].split("; ") == ["from teacher: staircase, uniform, l1-round, fisher, seeds 0-4",
                                             "from teacher: staircase-l1, staircase-params, staircase-proportional, "
                                             "seeds 0, 1", "from scratch: staircase, copycat, uniform, seeds 0-2"]
    assert repro.rows_made(_runs("staircase", 0.7), settings).startswith("Rows: 3 of the 87 planned (from teacher")
    assert repro.rows_made(_runs("staircase", 0.7), {}) == "Rows: 3."
