"""What a user meets at the command line: models from no zoo, exported files, bad numbers
and device flags. Each error is one line that names the input, exits non-zero, and
leaves what existed as it was."""

import json
import re

import pytest
from helpers import one_line_error


@pytest.mark.slow
def test_profile_and_predict_honour_the_input_shape_of_a_model_from_no_zoo(run_cli, tmp_path):
    # TinyResConcat declares no input size: without --input-shape both refuse, naming the flag
    one_line_error(run_cli("profile", "user_nets:tiny_res_concat", "--backend", "torch", "--out", "p.json"),
                    "--input-shape")
    assert not (tmp_path / "p.json").exists()
    r = run_cli("profile", "user_nets:tiny_res_concat", "--input-shape", "3,8,8", "--backend", "torch", "--threads",
                "1", "--timing", "quick", "--rounds", "1", "--no-progress", "--out", "p.json", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["network"] == "user_nets:tiny_res_concat@3x8x8" and summary["complete"]
    assert "\r" not in r.stderr  # --no-progress: no progress-bar frames
    r = run_cli("predict", "p.json", "user_nets:tiny_res_concat", "--input-shape", "3,8,8", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["predicted_ms"] == pytest.approx(json.loads(r.stdout)["teacher_ms"])


@pytest.mark.backend
def test_measure_times_an_exported_onnx_file(run_cli, tmp_path):
    from staircase.models import create_model
    from staircase.train.export import export_onnx

    export_onnx(create_model("wrn_16_1").eval(), (3, 32, 32), tmp_path / "m.onnx", check=False)
    r = run_cli("measure", "m.onnx", "--threads", "1", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["backend"] == "onnxruntime" and result["measurements"] >= 3
    assert result["low_ms"] <= result["median_ms"] <= result["high_ms"]
    one_line_error(run_cli("measure", "m.onnx", "--backend", "torch"), "m.onnx", "--backend onnxruntime")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    one_line_error(run_cli("measure", "bad.onnx", "--threads", "1"), "bad.onnx is not a model ONNX Runtime can load")


def test_measure_repeats_until_three_agree_and_flags_a_machine_that_does_not_settle():
    from staircase.profile.timing import Measurement, measure_repeated

    class Scripted:
        def __init__(self, times):
            self.times = iter(times)

        def time(self, run, protocol):
            return Measurement(next(self.times), 0.01, 100, False, 10)

    # a slow first measurement (the machine warming up) is outvoted by the next three
    settled = measure_repeated(Scripted([0.47, 0.28, 0.28, 0.281, 9.9]), run=None)
    assert len(settled.runs) == 4 and settled.median_ms == pytest.approx(0.28) and not settled.noisy
    disturbed = measure_repeated(Scripted([0.3, 0.45, 0.3, 0.45, 0.3, 0.45, 0.3]), run=None)
    assert len(disturbed.runs) == 7 and disturbed.noisy and disturbed.spread == pytest.approx(0.15 / 0.3)


def test_bad_numbers_are_refused_before_any_work(run_cli, tmp_path):
    one_line_error(run_cli("measure", "wrn_16_1", "--threads", "0"), "--threads 0 must be at least 1")
    for flag, value in (("--target-ms", "nan"), ("--target-ms", "-1"), ("--target-share", "0"),
                        ("--target-share", "inf")):
        one_line_error(run_cli("design", "wrn_16_1", "--profile", "none.json", flag, value, "--out", "s.json"),
                        flag, "must be a positive number")
    assert not (tmp_path / "s.json").exists()


def test_the_backend_device_is_named_by_its_flag(run_cli):
    r = run_cli("measure", "wrn_16_1", "--backend", "torch", "--backend-device", "cpu", "--threads", "1", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["device"] == "cpu"


def test_an_output_that_cannot_be_written_is_named_before_any_work(run_cli, tmp_path):
    (tmp_path / "a_file").write_text("mine")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked").chmod(0o500)
    try:
        one_line_error(run_cli("student", "wrn_16_1", "--scale", "0.5", "--out", "a_file/s.json"),
                       "--out a_file/s.json", "a_file is a file")
        one_line_error(run_cli("train", "teacher", "wrn_16_1", "--data", "digits", "--out", "a_file"),
                       "--out a_file is a file")
        one_line_error(run_cli("prune", "wrn_16_1", "--method", "l1", "--target-channels", "100", "--out",
                               "a_file/w.json"), "a_file is a file")
        one_line_error(run_cli("profile", "wrn_16_1", "--backend", "torch", "--out", "a_file/p.json"),
                       "a_file is a file")
        import os

        if os.geteuid() != 0:  # root writes anywhere
            one_line_error(run_cli("student", "wrn_16_1", "--scale", "0.5", "--out", "locked/s.json"),
                           "cannot write in locked")
    finally:
        (tmp_path / "locked").chmod(0o700)
    assert (tmp_path / "a_file").read_text() == "mine"


def test_prune_refuses_targets_that_are_not_positive_and_keeps_the_old_output(run_cli, tmp_path):
    (tmp_path / "w.json").write_text('{"keep": "me"}')
    for flag, value in (("--target-channels", "0"), ("--target-ms", "-1"), ("--target-params", "nan")):
        one_line_error(run_cli("prune", "wrn_16_1", "--method", "l1", flag, value, "--out", "w.json"), flag)
    assert (tmp_path / "w.json").read_text() == '{"keep": "me"}'


@pytest.mark.slow
def test_a_train_that_failed_at_the_start_can_be_run_again_as_corrected(run_cli, tmp_path):
    one_line_error(run_cli("train", "teacher", "wrn_16_1", "--data", "cifar10:no/such/dir", "--out", "run"),
                   "cifar10")
    assert not (tmp_path / "no").exists()  # a mistyped data path is not created
    assert not (tmp_path / "run" / "config.json").exists()  # nothing claimed the run directory
    r = run_cli("train", "teacher", "wrn_16_1", "--data", "digits", "--epochs", "1", "--train-images", "64",
                "--no-progress", "--out", "run")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "last.pt").exists()


def test_a_checkpoint_of_another_model_is_named_with_what_differs(tmp_path):
    from staircase.errors import StaircaseError
    from staircase.models import create_model
    from staircase.train.checkpoint import load_weights, save_checkpoint

    save_checkpoint(tmp_path / "c.pt", {"model": create_model("wrn_16_2").state_dict()})
    with pytest.raises(StaircaseError) as info:
        load_weights(create_model("wrn_16_1"), tmp_path / "c.pt", "wrn_16_1")
    message = str(info.value)
    assert re.search(r"\d+ of another shape \(e\.g\. [\w.]+: \[32, 16, 3, 3\] in the checkpoint, \[16, 16, 3, 3\] "
                     r"in the model\)", message), message
    assert "\n" not in message


def test_the_export_check_says_whether_the_difference_is_within_tolerance():
    import numpy as np

    from staircase.train.export import F32_TOLERANCE, output_verdict

    want = np.array([[10.0, -20.0]])
    ok = output_verdict(want + 1e-5, want, F32_TOLERANCE)
    assert ok.within_tolerance and ok.output_scale == 20.0 and ok.tolerance == pytest.approx(2e-3)
    assert not output_verdict(want + 0.01, want, F32_TOLERANCE).within_tolerance


def test_progress_off_a_terminal_is_a_line_every_tenth_with_the_time_left():
    from staircase.progress import LineProgress

    lines, now = [], [0.0]
    bar = LineProgress(40, "profiling", "pt", write=lines.append, clock=lambda: now[0])
    for _ in range(40):
        now[0] += 0.5
        bar.update()
    assert len(lines) == 10 and "\r" not in "".join(lines)
    assert lines[0] == "profiling: 4/40 pt (10%), 2 pt/s, 2 s so far, about 18 s left"
    assert lines[-1].startswith("profiling: 40/40 pt (100%)") and lines[-1].endswith("about 0 s left")


def test_a_pruning_run_says_how_far_it_got_and_how_long_is_left():
    from staircase.design.fisher import PruneState, progress_line

    state = PruneState(step=200, removed=["a"] * 80, seconds=240.0)
    assert progress_line(state, 400, 200) == ("pruning: step 200, 80 channels removed, 400 left, 4.0 min, "
                                               "about 10.0 min to 200")
    assert progress_line(state, 400, None).endswith("400 left, 4.0 min")


def test_make_installs_the_runtime_the_shipped_profiles_were_made_with():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pins = dict(line.split("==") for line in (root / "requirements.lock").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    profile = json.loads((root / "profiles" / "cpu-onnxruntime.json").read_text())
    assert pins["onnxruntime"] == profile["fingerprint"]["backend_version"]
    assert pins["torch"].split("+")[0] == profile["fingerprint"]["torch"].split("+")[0]
