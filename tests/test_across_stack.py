"""The across-stack study's conclusions (scripts/across_stack.py), computed from hand-made points."""

import pytest
from helpers import load_script


@pytest.fixture(scope="module")
def study():
    return load_script("across_stack")


def _p(method, setting, top1, ratio, size=1_000_000, **extra):
    return {"method": method, "setting": setting, "top1": top1, "ratio": ratio, "size_bytes": size,
            "compressed_bytes": size // 2, "peak_memory_bytes": 1, "teacher_ms": 1.0, **extra}


def test_dense_kernels_give_weight_pruning_no_speed_up_and_the_finding_says_so(study):
    points = [_p("teacher", "f32", 80, 1.0), _p("weight", "50%", 79, 1.02), _p("weight", "90%", 70, 0.97)]
    (line,) = [x for x in study.findings(points) if x.startswith("- (1)")]
    assert "measured 0.97-1.02 of the dense network's time: no speed-up" in line and "as the paper found" in line
    points[2]["ratio"] = 0.6
    (line,) = [x for x in study.findings(points) if x.startswith("- (1)")]
    assert "a speed-up at 90%, which the paper did not find" in line


def test_channel_pruning_is_called_best_only_when_no_point_beats_it_at_its_latency(study):
    points = [_p("teacher", "f32", 80, 1.0), _p("channel", "50%", 75, 0.5), _p("weight", "90%", 70, 0.98),
              _p("int8", "minmax", 79, 0.8)]
    (line,) = [x for x in study.findings(points) if x.startswith("- (2)")]
    assert line.startswith("- (2) channel pruning: 1 of 1 staircase students are beaten by no other method's point")
    assert "as the paper found" in line and "No other method reaches below its fastest point" in line
    points.append(_p("channel+int8", "50%", 76, 0.45))
    (line,) = [x for x in study.findings(points) if x.startswith("- (2)")]
    assert "0 of 1" in line and "it is not always the best" in line and "Only channel+int8 reach below" in line


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
