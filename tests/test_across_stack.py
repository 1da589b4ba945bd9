"""The across-stack study's conclusions (scripts/across_stack.py), computed from hand-made points."""

import pytest
from helpers import load_script

from staircase.compare.point import Point


@pytest.fixture(scope="module")
def study():
    return load_script("across_stack")


def _p(method, setting, top1, ratio, size=1_000_000, images=100, measurement="run-1", **extra):
    """A point timed in ``measurement`` with seven passes at ``ratio`` (None: never timed with others)."""
    timed = dict(ratio_ci95=[ratio, ratio], ratio_passes=[ratio] * 7, measurement=measurement) if measurement else {}
    return Point(method, setting, top1, ratio, ms=ratio, teacher_ms=1.0, size_bytes=size, compressed_bytes=size // 2,
                 peak_memory_bytes=1, peak_rss_bytes=1, precision="f32", threads=2, test_images=images, file="f",
                 **timed, **extra)


def test_dense_kernels_give_weight_pruning_no_speed_up_and_the_finding_says_so(study):
    points = [_p("teacher", "f32", 80, 1.0), _p("weight", "50%", 79, 1.02), _p("weight", "90%", 70, 0.97)]
    (line,) = [x for x in study.findings(points) if x.startswith("- (1)")]
    assert "measured 0.97-1.02 of the dense network's time: no speed-up" in line and "in line with the paper's (1)" in line
    points[2].ratio = 0.6
    (line,) = [x for x in study.findings(points) if x.startswith("- (1)")]
    assert "a speed-up at 90%, which the paper did not find" in line


def test_a_channel_point_no_rival_reached_says_so_and_the_paper_is_not_tested(study):
    points = [_p("teacher", "f32", 80, 1.0), _p("channel", "50%", 75, 0.5), _p("weight", "90%", 70, 0.98),
              _p("int8", "minmax", 79, 0.8), _p("channel+int8", "50%", 76, 0.45)]
    lines = study.findings(points)
    (line,) = [x for x in lines if x.startswith("- (2)")]
    assert line.startswith("- (2) channel pruning: 0 of 2 staircase students") and "do not test" in line
    assert "as the paper found" not in "\n".join(lines)
    assert "  - channel 50% (75.0% at 0.50): no rival reached this latency" in lines


def test_channel_against_a_rival_at_its_latency_says_won_lost_or_no_detectable_difference(study):
    big = dict(images=5000)
    points = [_p("teacher", "f32", 80, 1.0, **big), _p("channel", "50%", 75, 0.5, **big),
              _p("int8", "entropy", 70, 0.51, **big)]  # within 3% of the channel point, 5 points worse
    lines = study.findings(points)
    (line,) = [x for x in lines if x.startswith("- (2)")]
    assert "1 of 1" in line and "of their 1 pairs" in line and ": 1 won; in line with the paper's (2)" in line
    assert any("against int8 entropy (70.0% at 1.02x its time [1.02, 1.02]) +5.0 points [" in x and x.endswith(": won")
               for x in lines)
    points[2].top1 = 77.0
    (line,) = [x for x in study.findings(points) if x.startswith("- (2)")]
    assert "1 lost" in line and "against the paper's (2)" in line
    small = [_p("teacher", "f32", 80, 1.0), _p("channel", "50%", 75, 0.5), _p("int8", "entropy", 74, 0.5)]
    lines = study.findings(small)  # one point apart on 100 images: nothing told
    assert any(x.endswith("no detectable difference") for x in lines)
    assert "do not test the paper's (2)" in [x for x in lines if x.startswith("- (2)")][0]
    points.append(_p("int8", "slow", 90, 0.6, **big))  # slower than the channel point: not its rival
    assert not any("int8 slow" in x for x in study.findings(points) if x.startswith("  - "))


def test_a_rival_is_at_the_students_latency_by_its_time_over_the_students_pass_by_pass(study):
    teacher = _p("teacher", "f32", 80, 1.0, images=5000)
    channel = _p("channel", "50%", 75, 0.5, images=5000)
    channel.ratio_passes = [0.50, 0.52, 0.48, 0.55, 0.50, 0.47, 0.51]
    rival = _p("int8", "entropy", 70, 0.52, images=5000)  # its median ratio 4% above the student's ...
    rival.ratio_passes = [0.51, 0.53, 0.49, 0.56, 0.51, 0.48, 0.52]  # ... but 1.02 of its time pass by pass
    (line,) = [x for x in study.findings([teacher, channel, rival]) if x.startswith("- (2)")]
    assert line.startswith("- (2) channel pruning: 1 of 1") and "1 won" in line
    rival.ratio_passes = [r * 1.05 for r in channel.ratio_passes]  # 5% slower in every pass: not at its latency
    lines = study.findings([teacher, channel, rival])
    assert "  - channel 50% (75.0% at 0.50): no rival reached this latency" in lines


def test_points_from_two_measurement_runs_are_not_set_beside_each_other(study):
    points = [_p("teacher", "f32", 80, 1.0), _p("channel", "50%", 75, 0.5),
              _p("int8", "entropy", 70, 0.5, measurement="run-2"), _p("channel-unsnapped", "50%", 70, 0.45,
                                                                      measurement=None)]
    lines = study.findings(points)
    assert ("  - channel 50% (75.0% at 0.50): no rival reached this latency (1 not timed in the same run: rerun "
            "the comparison to time them together)") in lines
    assert "do not test the paper's (2)" in [x for x in lines if x.startswith("- (2)")][0]
    (line,) = [x for x in lines if x.startswith("- the staircase students against")]
    assert "at 1.11x the time (not timed in the same run)." in line


def test_the_fine_tuning_recipe_is_the_one_chosen_on_validation_unless_given(study, tmp_path):
    import json

    results = tmp_path / "results_cifar.json"
    with pytest.raises(SystemExit, match="no fine-tuning recipe chosen on validation; run scripts/reproduce_cifar"):
        study.chosen_recipe(None, None, results)
    results.write_text(json.dumps({"validation": {"recipe": {"chosen": {"epochs": 10, "lr": 0.03}}}}))
    assert study.chosen_recipe(None, None, results) == (10, 0.03)
    assert study.chosen_recipe(None, 0.1, results) == (10, 0.1)
    assert study.chosen_recipe(2, 0.01, tmp_path / "absent.json") == (2, 0.01)


def test_the_committed_page_is_what_the_script_renders_from_the_committed_json(study, tmp_path):
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    found = study.load(docs, ["onnxruntime", "openvino"])
    (tmp_path / "across_stack").mkdir()
    assert (docs / "ACROSS_STACK.md").read_text() == study.page(found, tmp_path)


def test_the_staircase_students_are_set_beside_the_unsnapped_widths_target_by_target(study):
    points = [_p("teacher", "f32", 80, 1.0), _p("channel", "50%", 75, 0.5), _p("channel-unsnapped", "50%", 70, 0.45),
              _p("channel", "70%", 78, 0.7)]
    (line,) = [x for x in study.findings(points) if x.startswith("- the staircase students against")]
    assert line.endswith("unsnapped: 50%: +5.0 points [-7.4, +17.4] (no detectable difference) at 1.11x the time "
                         "[1.11, 1.11].")


def test_the_int8_finding_reports_the_range_and_the_most_accurate_setting(study):
    points = [_p("teacher", "f32", 80, 1.0, size=4_000_000), _p("int8", "minmax", 79, 0.7, size=1_000_000),
              _p("int8", "entropy", 79.5, 0.72, size=1_000_000)]
    (line,) = [x for x in study.findings(points) if x.startswith("- INT8")]
    assert "0.71 of the float time (median over 2 settings, 0.70-0.72)" in line
    assert "top-1 change -1.0 to -0.5 points; the most accurate setting is entropy" in line
    assert "0.25 of the float file's size" in line


def test_the_weight_runs_are_shared_between_backends_and_nothing_else(study, tmp_path):
    first, other = tmp_path / "onnxruntime", tmp_path / "openvino"
    for name in ("weight-90", "channel-50"):
        (first / "train" / name).mkdir(parents=True)
        (first / "train" / name / "summary.json").write_text("{}")
    (first / "train" / "weight-95").mkdir()  # unfinished: not shared
    study.share_weight_runs(first, other)
    assert sorted(p.name for p in (other / "train").iterdir()) == ["weight-90"]
    assert (other / "train" / "weight-90").resolve() == (first / "train" / "weight-90").resolve()


def test_targets_below_the_steps_floor_are_replaced_by_reachable_ones(study):
    assert study.reachable_targets([0.35, 0.5, 0.7, 0.85], 0.30) == [0.35, 0.5, 0.7, 0.85]  # all reachable
    # OpenVINO's coarse steps: the narrowest student at 61%: the floor, then the widest gap halved
    assert study.reachable_targets([0.35, 0.5, 0.7, 0.85], 0.61) == [0.63, 0.7, 0.77, 0.85]
    assert study.reachable_targets([0.35, 0.5, 0.7, 0.85], 0.66) == [0.7, 0.77, 0.81, 0.85]  # 0.68 is too near 0.7
    assert study.reachable_targets([0.5], 0.97) == []  # nothing reachable: no points, nothing invented


def test_channel_plus_int8_is_set_beside_the_same_target_alone_and_only_that(study):
    points = [_p("teacher", "f32", 80, 1.0), _p("channel", "50%", 75, 0.5), _p("channel", "70%", 78, 0.7),
              _p("channel+int8", "50%", 74, 0.4)]
    (line,) = [x for x in study.findings(points) if x.startswith("- channel + INT8")]
    assert line == ("- channel + INT8 against channel alone: 50%: 0.80x the time [0.80, 0.80], -1.0 points "
                    "[-13.1, +11.1] (no detectable difference).")


def test_the_thread_count_reading_follows_each_runtimes_median(study):
    def found(ratio_1_thread):
        return {"points": [_p("teacher", "f32", 80, 1.0, ratio_1_thread=1.0),
                           _p("int8", "minmax", 79, 0.8, ratio_1_thread=ratio_1_thread)]}

    (line,) = [x for x in study.across_backends({"a": found(0.6), "b": found(0.8), "c": found(1.0)})
               if x.startswith("- one thread")]
    assert "a: 0.88 (compression saves more when the runtime has one core)" in line
    assert "b: 1.00 (the same saving at one thread, within 3%)" in line
    assert "c: 1.12 (compression saves less when the runtime has one core)" in line


def test_points_a_backend_could_not_make_are_listed_with_their_reason(study):
    why = "35% of the network's latency is below what this profile's steps reach"
    lines = study.not_made([{"method": "channel", "setting": "35%", "why": why},
                            {"method": "channel+int8", "setting": "35%", "why": why},
                            {"method": "bf16", "setting": "bf16", "why": "this CPU has no bf16"}])
    assert lines == [f"- not made: channel 35%, channel+int8 35%: {why}", "- not made: bf16 bf16: this CPU has no bf16"]
