"""The experiment's fairness rules and verdicts (scripts/reproduce_cifar.py), on hand-made rows."""

import pytest
from helpers import load_script

REPRO = load_script("reproduce_cifar")


@pytest.fixture(scope="module")
def repro():
    return REPRO


def _row(method, top1, seed, ratio=0.5, init="teacher", target=0.5, epochs=3, correct=None):
    row = {"method": method, "init": init, "target": target, "seed": seed, "epochs": epochs, "train_minutes": 1.0,
           "ratio": ratio, "params": 1000, "top1": top1, "matched": abs(ratio / target - 1) <= 0.03}
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


def test_rows_of_a_design_made_again_are_dropped_and_the_others_kept(repro):
    from types import SimpleNamespace

    specs = {0.5: {"staircase-l1": SimpleNamespace(params=1000, widths={"a": 8}),
                   "uniform": SimpleNamespace(params=2000, widths={"a": 16})}}
    rows = [dict(_row("staircase-l1", 60.0, 0), design="staircase-l1"),  # old row: no widths, same params
            dict(_row("uniform", 61.0, 0), design="uniform"),  # the design now has other params
            dict(_row("staircase-l1", 62.0, 1), design="staircase-l1", widths={"a": 24}),  # other widths
            dict(_row("fisher", 50.0, 0, target=0.7), design="fisher")]  # no design kept for it: kept
    assert [r["top1"] for r in repro.current_rows(rows, specs)] == [60.0, 50.0]


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


def test_a_rival_slower_than_the_target_or_without_per_image_results_is_not_compared(repro):
    rows = _runs("staircase", 0.6) + _runs("uniform", 0.8, ratio=0.56)  # 12% slower than 50%
    rows += [_row("fisher", 61.0, s) for s in range(3)]  # no per-image results
    found = {v["rival"]: v for v in repro.verdicts(rows)}
    assert found["uniform"]["difference"] is None and "slower than the target" in found["uniform"]["verdict"]
    assert found["fisher"]["difference"] is None and "without per-image results" in found["fisher"]["verdict"]
    faster = {v["rival"]: v for v in repro.verdicts(_runs("staircase", 0.6) + _runs("uniform", 0.6, ratio=0.4))}
    assert faster["uniform"]["difference"] is not None  # faster only gave latency away: compared


def test_correctness_round_trips_through_a_row(repro):
    correct = [True, False, False, True, True, True, False, True, True, False, True]
    assert repro.unpack_correct(repro.pack_correct(correct), len(correct)).tolist() == correct
