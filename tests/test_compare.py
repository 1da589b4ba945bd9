"""Across the stack: weight pruning, INT8 quantisation and channel pruning compared on the device."""

import json

import numpy as np
import pytest
import torch
from helpers import one_line_error, stepped_onnxruntime
from torch import nn

from staircase.architecture import Architecture
from staircase.compare.comparison import CompareSettings, Comparison
from staircase.compare.point import Point
from staircase.compare.report import pareto
from staircase.compare.runtime import file_zero_share
from staircase.errors import StaircaseError
from staircase.models import create_model
from staircase.spec import StudentSpec
from staircase.train.checkpoint import model_from_checkpoint, save_checkpoint
from staircase.train.sparsity import WeightMasks, check_sparsity, zero_share
from staircase.train.trainer import TrainConfig, train

# The INT8 network's outputs may differ from the float network's by this share of the
# largest float output (per-channel int8 weights, uint8 activations: ~1% per layer, which
# adds up over a dozen layers), and must pick the same class for this share of the images.
INT8_TOLERANCE = 0.10
INT8_SAME_CLASS = 0.90


def _small() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))


def test_magnitude_masks_zero_the_smallest_share_over_all_layers_and_hold_through_training_steps():
    model = _small()
    before = {n: w.detach().clone() for n, w in (("0", model[0].weight), ("3", model[3].weight))}
    masks = WeightMasks(model, 0.75)
    assert zero_share(model) == pytest.approx(0.75, abs=1e-3)
    kept = torch.cat([before[n][masks.masks[n]].abs() for n in before])
    dropped = torch.cat([before[n][~masks.masks[n]].abs() for n in before])
    assert kept.min() >= dropped.max()  # global: ranked together, not layer by layer
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    masks.hold(opt)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 3, 8, 8)).square().sum().backward()
        opt.step()
    assert zero_share(model) == pytest.approx(0.75, abs=1e-3)
    assert all(bool((w[~masks.masks[n]] == 0).all()) for n, w in masks.weights.items())


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, "lots"])
def test_a_sparsity_outside_zero_to_one_is_one_clear_error(bad):
    with pytest.raises(StaircaseError, match=r"in \[0, 1\)"):
        check_sparsity(bad)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A wrn_16_1 trained for one short epoch on digits (a real checkpoint, with its architecture)."""
    out = tmp_path_factory.mktemp("teacher")
    summary = train(TrainConfig(model="wrn_16_1", data="digits", out=str(out / "t"), epochs=1, train_images=256,
                                batch_size=64, lr=0.05, threads=2, progress=False), log=lambda m: None)
    return out / "t" / "last.pt", summary


@pytest.mark.slow
def test_weight_pruned_fine_tuning_keeps_its_zeros_in_the_checkpoint_the_onnx_file_and_a_resume(teacher, tmp_path):
    ckpt, _ = teacher
    config = TrainConfig(model="wrn_16_1", data="digits", out=str(tmp_path / "w"), role="student", init=str(ckpt),
                         sparsity=0.9, epochs=2, train_images=128, batch_size=64, lr=0.05, threads=2, progress=False)
    summary = train(config, log=lambda m: None, on_epoch=lambda epoch, row: False)  # killed after epoch 1
    assert summary.zero_share >= 0.9 - 1e-3
    model = model_from_checkpoint(tmp_path / "w" / "last.pt")[0]
    assert zero_share(model) >= 0.9 - 1e-3
    from staircase.train.export import export_onnx

    export_onnx(model, (3, 32, 32), tmp_path / "w.onnx")
    assert file_zero_share(tmp_path / "w.onnx") >= 0.9 - 1e-3
    # resumed, the run computes the same mask from the same init weights and holds it
    assert train(config, resume=True, log=lambda m: None).zero_share >= 0.9 - 1e-3
    again = model_from_checkpoint(tmp_path / "w" / "last.pt")[0]
    convs = [(a.weight, b.weight) for a, b in zip(model.modules(), again.modules(), strict=True)
             if isinstance(a, nn.Conv2d)]
    assert all(torch.equal(a == 0, b == 0) for a, b in convs)


def test_sparsity_without_weights_to_start_from_is_refused(tmp_path):
    with pytest.raises(StaircaseError, match="--init"):
        TrainConfig(model="wrn_16_1", data="digits", out=str(tmp_path), sparsity=0.5).check()


@pytest.mark.backend
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_int8_outputs_stay_close_to_float_and_the_file_is_smaller(backend, tmp_path):
    pytest.importorskip(backend)
    from staircase.compare.runtime import file_bytes, file_runner
    from staircase.quantize import calibration_batches, quantize_onnxruntime, quantize_openvino
    from staircase.train.data import load_data
    from staircase.train.export import export_onnx

    if backend == "openvino":
        pytest.importorskip("nncf")
    torch.manual_seed(0)
    model = create_model("wrn_16_1", num_classes=10).eval()
    export_onnx(model, (3, 32, 32), tmp_path / "f.onnx")
    data = load_data("digits", (3, 32, 32), augment=False)
    batches = calibration_batches(data.train, 64)
    path = tmp_path / ("q.onnx" if backend == "onnxruntime" else "q.xml")
    how = (quantize_onnxruntime if backend == "onnxruntime" else quantize_openvino)(tmp_path / "f.onnx", path, batches)
    assert how["calibration_images"] == 64
    x = np.stack([np.asarray(data.test[i][0]) for i in range(64)])
    f = file_runner("onnxruntime", tmp_path / "f.onnx")(x)
    q = file_runner(backend, path, "int8")(x)
    assert np.abs(q - f).max() <= INT8_TOLERANCE * np.abs(f).max()
    assert (q.argmax(1) == f.argmax(1)).mean() >= INT8_SAME_CLASS
    assert file_bytes(path) < 0.5 * file_bytes(tmp_path / "f.onnx")


@pytest.mark.backend
def test_calibration_images_that_do_not_fit_the_network_are_one_clear_error(tmp_path):
    pytest.importorskip("onnxruntime")
    from staircase.quantize import quantize_onnxruntime
    from staircase.train.export import export_onnx

    export_onnx(create_model("wrn_16_1").eval(), (3, 32, 32), tmp_path / "f.onnx")
    with pytest.raises(StaircaseError, match="calibration images are 1x8x8 but .* takes 3x32x32"):
        quantize_onnxruntime(tmp_path / "f.onnx", tmp_path / "q.onnx", [np.zeros((4, 1, 8, 8), np.float32)])
    assert not (tmp_path / "q.onnx").exists()


def _point(method, setting, top1, ratio):
    return Point(method, setting, top1, ratio, ms=ratio, teacher_ms=1.0, size_bytes=1, compressed_bytes=1,
                 peak_memory_bytes=1, peak_rss_bytes=1, precision="f32", threads=2, test_images=10, file="f")


def test_the_pareto_front_keeps_the_points_nothing_beats():
    points = [_point("a", "1", 90, 1.0), _point("a", "2", 85, 0.5), _point("a", "3", 80, 0.6),
              _point("a", "4", 85, 0.7)]
    assert pareto(points, "ratio") == {0, 1}


def test_the_table_keeps_each_methods_points_together_in_ascending_targets():
    from staircase.compare.report import points_table

    points = [_point(m, s, 50.0, r)
              for m, s, r in (("teacher", "f32", 1.0), ("channel", "70%", 0.7), ("int8", "minmax", 0.8),
                              ("channel", "43%", 0.45), ("int8", "entropy", 0.8))]
    rows = [line.split()[:2] for line in points_table(points).splitlines()[2:]]
    assert rows == [["teacher", "f32"], ["channel", "43%"], ["channel", "70%"], ["int8", "minmax"],
                    ["int8", "entropy"]]


def test_settings_a_backend_cannot_run_are_refused_before_any_work(tmp_path):
    base = dict(teacher="t.pt", data="digits", out=str(tmp_path / "c"))
    with pytest.raises(StaircaseError, match="torch backend has no INT8 path"):
        CompareSettings(**base, backend="torch", methods=["int8"]).check()
    with pytest.raises(StaircaseError, match=r"in \[0, 1\)"):
        CompareSettings(**base, sparsities=[0.5, 1.0]).check()
    with pytest.raises(StaircaseError, match="not one of"):
        CompareSettings(**base, methods=["magic"]).check()
    assert "int8" not in CompareSettings(**base, backend="torch").check()
    assert not (tmp_path / "c").exists()


def test_a_network_for_other_data_or_a_student_checkpoint_is_one_clear_error(tmp_path, run_cli):
    model = create_model("wrn_16_1", num_classes=3)
    save_checkpoint(tmp_path / "three.pt", {"model": model.state_dict(), "architecture": {
        "name": "wrn_16_1", "kwargs": {"num_classes": 3}, "input_size": [3, 32, 32]}})
    r = run_cli("compare", "three.pt", "--data", "digits", "--out", "c")
    one_line_error(r, "--data digits has 10 classes but three.pt has 3 outputs; compare on the data the network "
                      "was trained on")
    assert not (tmp_path / "c" / "compare.json").exists()
    spec, student = StudentSpec.create(Architecture("wrn_16_1", {"num_classes": 10}, (3, 32, 32)),
                                       {"block1.layer.0.conv1": 8}, "s")
    save_checkpoint(tmp_path / "student.pt", {"model": student.state_dict(), "spec": spec.to_dict(),
                                              "architecture": spec.teacher.to_dict()})
    r = run_cli("compare", "student.pt", "--data", "digits", "--out", "c")
    one_line_error(r, "student.pt holds a student", "give that checkpoint")
    r = run_cli("compare", "three.pt", "--data", "digits", "--out", "c", "--sparsities", "0.5", "1")
    one_line_error(r, "--sparsities 1.0 must be in [0, 1)")


@pytest.mark.slow
@pytest.mark.backend
def test_compare_makes_every_method_s_points_and_a_rerun_reuses_them(teacher, tmp_path):
    pytest.importorskip("onnxruntime")
    from staircase.profile.sweep import profile_network

    ckpt, _ = teacher
    # the device profile with clean steps (computed timings), so that the design cannot
    # depend on how loaded the machine is; the students are measured for real
    profile_network("wrn_16_1", stepped_onnxruntime(), tmp_path / "p.json", num_classes=10, grid=4, rounds=1,
                    progress=False, log=lambda m: None)
    settings = CompareSettings(teacher=str(ckpt), data="digits", out=str(tmp_path / "c"), targets=[0.6, 0.02],
                               profile=str(tmp_path / "p.json"), sparsities=[0.8], int8_settings=["minmax"],
                               epochs=1, train_images=128, batch_size=64, calibration_images=32, threads=2,
                               timing="quick")
    logged, made = [], []
    points = Comparison(settings, log=logged.append).run(on_point=made.append)
    assert made == points  # each new point handed on as it is saved
    assert [(p.method, p.setting) for p in points] == [
        ("teacher", "f32"), ("channel", "60%"), ("channel-unsnapped", "60%"), ("weight", "80%"),
        ("int8", "minmax"), ("channel+int8", "60%")]
    for p in points:
        assert p.top1 >= 0 and p.ratio > 0 and p.size_bytes > 0 and p.peak_memory_bytes >= 0
        assert p.test_images == 360
    by = {p.method: p for p in points}
    # the point carries what the design loop measured, and the loop kept its contract: the
    # student it wrote fits the target by its own ruler, or says by how much it missed (a
    # latency bound here would be a bet on how busy the machine is)
    from staircase.spec import StudentSpec

    notes = StudentSpec.load(tmp_path / "c" / "students" / "channel-60.json").provenance.notes
    assert by["channel"].info["designed_ratio"] == notes["ratio_to_teacher"]
    assert notes["at_profile_speed_ms"] <= notes["target_ms"] or notes["missed_by_ms"] > 0
    assert by["teacher"].ms > 0 and by["teacher"].teacher_ms > 0
    assert by["weight"].info["zero_share"] >= 0.8 - 1e-3 and by["weight"].info["file_zero_share"] >= 0.8 - 1e-3
    assert by["weight"].size_bytes == pytest.approx(by["teacher"].size_bytes, rel=0.01)  # dense file
    assert by["weight"].compressed_bytes < by["teacher"].compressed_bytes
    assert by["int8"].size_bytes < by["teacher"].size_bytes
    assert by["channel"].info["params"] < by["teacher"].info["params"]
    # every point timed again in the closing measurement, the same passes for all
    (run,) = {p.measurement for p in points}
    assert run.startswith("onnxruntime-") and [m for m in logged if m.startswith("timing all 6 points together")]
    for p in points:
        assert len(p.ratio_passes) == 7 and p.ratio_ci95[0] <= p.ratio <= p.ratio_ci95[1]
    assert by["int8"].time_over(by["channel"]).passes == [
        a / b for a, b in zip(by["int8"].ratio_passes, by["channel"].ratio_passes, strict=True)]
    saved = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert saved["points"] == [p.to_dict() for p in points]
    # a target below what the steps reach is said, not made, and the rest goes on
    assert [(x["method"], x["setting"]) for x in saved["skipped"]] == [
        ("channel", "2%"), ("channel-unsnapped", "2%"), ("channel+int8", "2%")]
    assert "below what this profile's steps reach" in saved["skipped"][0]["why"]
    lowest = Comparison(settings).lowest_target()  # the floor the skipped target was below
    assert 0.02 < lowest < 0.6 and f"({lowest:.0%} predicted for the narrowest student)" in saved["skipped"][0]["why"]
    assert (tmp_path / "c" / "compare-latency.png").exists() and (tmp_path / "c" / "compare-size.png").exists()
    with pytest.raises(StaircaseError, match=r"other settings \(epochs: 1 there, 2 here\)"):
        Comparison(CompareSettings(**{**settings.__dict__, "epochs": 2}))
    again = []
    assert Comparison(settings, log=again.append).run() == points
    assert [m for m in again if "building" in m] == [  # only the points that could not be made are tried again
        "channel 2%: building", "channel-unsnapped 2%: building", "channel+int8 2%: building"]
    assert not [m for m in again if m.startswith("timing all")]  # already timed together: not again


@pytest.mark.backend
def test_an_int8_op_runs_on_each_runtimes_int8_convolution(tmp_path):
    """``profile --precision int8``: the one-op graph is quantised, and each runtime runs its
    INT8 kernel (ONNX Runtime fuses QLinearConv; OpenVINO's convolution runs in u8/i8)."""
    ort = pytest.importorskip("onnxruntime")
    import onnx

    from staircase.profile.backends import _at_precision, get_backend
    from staircase.profile.onnx_graph import op_model
    from staircase.profile.ops import OpSpec

    op = OpSpec("conv", "out", 16, 32, (3, 3), (1, 1), (1, 1), (8, 8), True)
    model, shape = op_model(op, 24, 1)
    data = _at_precision(model.SerializeToString(), shape, "int8")
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    opts.log_severity_level = 3
    ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    assert "QLinearConv" in [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert get_backend("onnxruntime", threads=1, precision="int8").prepare_op(op, 24)().shape == (1, 24, 8, 8)
    if pytest.importorskip("openvino"):
        run = get_backend("openvino", threads=1, precision="int8").prepare_op(op, 24)
        assert run().shape == (1, 24, 8, 8)
        kinds = {(o.get_rt_info()["layerType"].astype(str), o.get_rt_info()["runtimePrecision"].astype(str))
                 for o in run.compiled.get_runtime_model().get_ordered_ops()}
        assert {p for kind, p in kinds if kind == "Convolution"} <= {"u8", "i8"}
    with pytest.raises(StaircaseError, match="backend torch runs precision f32/f16/bf16, not 'int8'"):
        get_backend("torch", precision="int8")
