"""The experiment's fairness rules and verdicts (scripts/reproduce_cifar.py), on hand-made rows."""

import pytest
from helpers import load_script


@pytest.fixture(scope="module")
def repro():
    return load_script("reproduce_cifar")


def _row(method, top1, seed, ratio=0.5, init="teacher", target=0.5, epochs=3):
    return {"method": method, "init": init, "target": target, "seed": seed, "epochs": epochs, "train_minutes": 1.0,
            "ratio": ratio, "params": 1000, "top1": top1, "matched": abs(ratio / target - 1) <= 0.03}


def test_every_network_of_a_part_trains_the_same_epochs_and_starts_the_same_way(repro):
    assert set(repro.FROM_SCRATCH) <= set(repro.FROM_TEACHER) == set(repro.DESIGNS)  # one set of designs
    assert {"staircase-fisher", "staircase-l1", "staircase-proportional", "uniform", "l1-round", "fisher"} == \
        set(repro.FROM_TEACHER)
    assert {"staircase-fisher", "fisher", "uniform"} <= set(repro.FROM_SCRATCH)  # the paper's student and copycat


def test_the_row_of_the_tools_default_allocation_is_labelled_staircase(repro, monkeypatch):
    assert repro.method_of(f"staircase-{repro.DEFAULT_ALLOCATION}", "teacher") == "staircase"
    monkeypatch.setattr(repro, "DEFAULT_ALLOCATION", "l1")
    assert [repro.method_of(d, "teacher") for d in ("staircase-l1", "staircase-fisher", "fisher")] == \
        ["staircase", "staircase-fisher", "fisher"]
    assert [repro.method_of(d, "scratch") for d in ("fisher", "uniform")] == ["copycat", "uniform"]


def test_a_row_more_than_3_percent_from_its_target_is_unmatched(repro):
    assert repro.matched(0.514, 0.5) and repro.matched(0.486, 0.5)
    assert not repro.matched(0.52, 0.5) and not repro.matched(0.48, 0.5)


def test_the_verdict_names_the_winner_its_margin_and_whether_the_seeds_tell_them_apart(repro):
    rows = [_row("staircase", t, s) for s, t in enumerate((60.0, 61.0, 62.0))]
    rows += [_row("uniform", t, s) for s, t in enumerate((55.0, 56.0, 57.0))]
    (line,) = repro.verdicts(rows)
    assert "staircase won with 61.00 +- 1.00% (3 seeds), 5.00 points over uniform" in line
    assert "more than the seeds' spread (1.00)" in line
    rows = [_row("staircase", t, s) for s, t in enumerate((60.0, 62.0, 64.0))]
    rows += [_row("uniform", t, s) for s, t in enumerate((61.0, 63.0, 65.0))]
    (line,) = repro.verdicts(rows)
    assert line.startswith("- from teacher, 50% of the teacher: uniform won") and "within the seeds' spread" in line
    assert "the tool's default staircase student ranked 2 of 2, 1.00 points behind" in line


def test_a_network_slower_than_the_target_cannot_win_and_a_faster_one_can(repro):
    rows = [_row("staircase", t, s) for s, t in enumerate((60.0, 61.0, 62.0))]
    rows += [_row("uniform", t, s, ratio=0.56) for s, t in enumerate((70.0, 71.0, 72.0))]  # 12% too slow
    rows += [_row("l1-round", t, s, ratio=0.45) for s, t in enumerate((58.0, 59.0, 60.0))]  # 10% faster
    (line,) = repro.verdicts(rows)
    assert line.startswith("- from teacher, 50% of the teacher: staircase won") and "over l1-round" in line
    assert line.endswith("not ranked, measured more than 3% slower than the target: uniform")
    rows = [_row("staircase", t, s) for s, t in enumerate((60.0, 61.0, 62.0))]
    rows += [_row("l1-round", t, s, ratio=0.45) for s, t in enumerate((68.0, 69.0, 70.0))]
    (line,) = repro.verdicts(rows)
    assert "l1-round won with 69.00 +- 1.00% (3 seeds) at 0.450 of the teacher, 8.00 points over staircase" in line


def test_one_seed_is_not_judged_against_a_spread(repro):
    (line,) = repro.verdicts([_row("staircase", 60.0, 0), _row("uniform", 59.0, 0)])
    assert "one seed so far: no spread to judge the margin by" in line and "spread (0.00)" not in line



def test_rows_of_a_design_made_again_are_dropped_and_the_others_kept(repro):
    from types import SimpleNamespace

    specs = {0.5: {"staircase-l1": SimpleNamespace(params=1000, widths={"a": 8}),
                   "uniform": SimpleNamespace(params=2000, widths={"a": 16})}}
    rows = [dict(_row("staircase-l1", 60.0, 0), design="staircase-l1"),  # old row: no widths, same params
            dict(_row("uniform", 61.0, 0), design="uniform"),  # the design now has other params
            dict(_row("staircase-l1", 62.0, 1), design="staircase-l1", widths={"a": 24}),  # other widths
            dict(_row("fisher", 50.0, 0, target=0.7), design="fisher")]  # no design kept for it: kept
    assert [r["top1"] for r in repro.current_rows(rows, specs)] == [60.0, 50.0]


def test_equal_means_are_called_a_tie_and_the_default_tied_for_first(repro):
    rows = [_row("staircase", t, s) for s, t in enumerate((60.0, 61.0, 62.0))]
    rows += [_row("staircase-l1", t, s) for s, t in enumerate((59.5, 61.0, 62.5))]
    rows += [_row("uniform", t, s) for s, t in enumerate((50.0, 51.0, 52.0))]
    (line,) = repro.verdicts(rows)
    assert " tied at 61.00% (+- " in line and "won" not in line and "student" not in line
    assert "staircase-l1 and staircase tied" in line or "staircase and staircase-l1 tied" in line
    assert "within the seeds' spread" in line
    (line,) = repro.verdicts([_row("staircase", 60.0, 0), _row("uniform", 59.0, 0)])
    assert "(1 seed)" in line


def test_the_teacher_is_accepted_only_once_its_validation_top1_stopped_rising(repro):
    def curve(values):
        return [{"epoch": i + 1, "val_top1": v, "train_loss": 1.0, "lr": 0.1} for i, v in enumerate(values)]

    rising = repro.plateau(curve([50 + i for i in range(30)]))
    assert not rising["plateaued"] and rising["window"] == 3 and rising["rise"] == pytest.approx(3.0)
    assert "still rising" in rising["reason"]
    flat = repro.plateau(curve([50 + min(i, 20) * 0.8 + (0.3 if i % 2 else 0) for i in range(30)]))
    assert flat["plateaued"] and "stopped rising" in flat["reason"]
    assert not repro.plateau(curve([60.0] * 5))["plateaued"]  # too short to tell
