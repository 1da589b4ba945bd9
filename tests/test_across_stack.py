"""The across-stack study's conclusions (scripts/across_stack.py), computed from hand-made points."""

import pytest
from helpers import load_script

from staircase.compare.point import Point


@pytest.fixture(scope="module")
def study():
    return load_script("across_stack")


def _p(method, setting, top1, ratio, size=1_000_000, **extra):
    return Point(method, setting, top1, ratio, ms=ratio, teacher_ms=1.0, size_bytes=size, compressed_bytes=size // 2,
                 peak_memory_bytes=1, peak_rss_bytes=1, precision="f32", threads=2, test_images=100, file="f",
                 **extra)


def test_dense_kernels_give_weight_pruning_no_speed_up_and_the_finding_says_so(study):
    points = [_p("teacher", "f32", 80, 1.0), _p("weight", "50%", 79, 1.02), _p("weight", "90%", 70, 0.97)]
    (line,) = [x for x in study.findings(points) if x.startswith("- (1)")]
    assert "measured 0.97-1.02 of the dense network's time: no speed-up" in line and "as the paper found" in line
    points[2].ratio = 0.6
    (line,) = [x for x in study.findings(points) if x.startswith("- (1)")]
    assert "a speed-up at 90%, which the paper did not find" in line


def test_channel_pruning_is_called_best_only_when_no_point_keeping_every_channel_beats_it(study):
    points = [_p("teacher", "f32", 80, 1.0), _p("channel", "50%", 75, 0.5), _p("weight", "90%", 70, 0.98),
              _p("int8", "minmax", 79, 0.8), _p("channel+int8", "50%", 76, 0.45)]
    (line,) = [x for x in study.findings(points) if x.startswith("- (2)")]
    assert line.startswith("- (2) channel pruning: 2 of 2 staircase students (alone or quantised) are beaten by no")
    assert "as the paper found" in line and "Neither weight pruning nor INT8 reaches below" in line
    points.append(_p("int8", "entropy", 77, 0.51))  # faster than `channel 50%` within 3%, and more accurate
    (line,) = [x for x in study.findings(points) if x.startswith("- (2)")]
    assert "1 of 2" in line and "is not always the best" in line and "(channel 50% by int8 entropy)" in line
    points.append(_p("int8", "fast", 60, 0.4))
    (line,) = [x for x in study.findings(points) if x.startswith("- (2)")]
    assert "Only int8 reach below its fastest point" in line


def test_the_staircase_students_are_set_beside_the_unsnapped_widths_target_by_target(study):
    points = [_p("teacher", "f32", 80, 1.0), _p("channel", "50%", 75, 0.5), _p("channel-unsnapped", "50%", 70, 0.45),
              _p("channel", "70%", 78, 0.7)]
    (line,) = [x for x in study.findings(points) if x.startswith("- the staircase students against")]
    assert line.endswith("unsnapped: 50%: +5.0 points at 1.11x the time.")


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
    assert line == "- channel + INT8 against channel alone: 50%: 0.80x the time, -1.0 points."


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
