"""The trainer on tiny data: loss goes down, resume is exact, NaN stops cleanly, run
directories are not mixed, distillation pairs its points, checkpoints evaluate and export."""

import json

import pytest
import torch

from staircase.architecture import Architecture
from staircase.cli import main
from staircase.errors import StaircaseError
from staircase.spec import StudentSpec
from staircase.train import trainer as trainer_module
from staircase.train.checkpoint import model_from_checkpoint, read_checkpoint, rng_state, set_rng_state
from staircase.train.trainer import TrainConfig, TrainingDiverged, train

TINY = dict(data="digits", train_images=192, batch_size=64, lr=0.05, threads=2, progress=False, eval_batch_size=512)


def _config(out, **kw):
    return TrainConfig(**{"model": "wrn_16_1", "out": str(out), "epochs": 2, **TINY, **kw})


def _weights(path):
    return read_checkpoint(path)["model"]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    summary = train(_config(out, epochs=2, deterministic=True), log=lambda m: None)
    return out, summary


@pytest.mark.slow
def test_two_epochs_lower_the_loss_and_write_the_run_files(teacher_run):
    out, summary = teacher_run
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    assert {"lr", "train_ce", "train_top1", "test_top1", "test_top5", "images_per_s"} <= set(rows[0])
    assert (out / "metrics.csv").read_text().splitlines()[0].startswith("epoch,lr,train_loss")
    assert (out / "best.pt").exists() and (out / "config.json").exists()
    assert summary.final_top1 == rows[-1]["test_top1"]
    state = read_checkpoint(out / "last.pt")
    assert state["epoch"] == 2 and {"optimizer", "scheduler", "rng", "architecture"} <= set(state)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path, monkeypatch, teacher_run):
    original = trainer_module._train_epoch

    def killed_in_epoch_2(run, model, opt, scaler, epoch, *args):
        if epoch == 1:
            raise KeyboardInterrupt  # the process dies mid-epoch: nothing of epoch 2 is saved
        return original(run, model, opt, scaler, epoch, *args)

    monkeypatch.setattr(trainer_module, "_train_epoch", killed_in_epoch_2)
    config = _config(tmp_path / "run", deterministic=True)
    with pytest.raises(KeyboardInterrupt):
        train(config, log=lambda m: None)
    assert read_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
    monkeypatch.setattr(trainer_module, "_train_epoch", original)
    train(config, resume=True, log=lambda m: None)
    a, b = _weights(teacher_run[0] / "last.pt"), _weights(tmp_path / "run" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_run_directory_is_not_mixed(tmp_path, teacher_run):
    out = teacher_run[0]
    with pytest.raises(StaircaseError, match="already holds a run; pass --resume"):
        train(_config(out, deterministic=True), log=lambda m: None)
    with pytest.raises(StaircaseError, match="other settings .*lr"):
        train(_config(out, deterministic=True, lr=0.2), resume=True, log=lambda m: None)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(StaircaseError, match="not a staircase run directory"):
        train(_config(tmp_path / "other"), log=lambda m: None)


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = trainer_module.F.cross_entropy

    def poisoned(logits, y, *a, **kw):
        calls["n"] += 1
        loss = real(logits, y, *a, **kw)
        # epoch 1: 3 steps + 1 test batch; the 6th call is epoch 2, step 2
        return loss * float("nan") if calls["n"] == 6 else loss

    monkeypatch.setattr(trainer_module.F, "cross_entropy", poisoned)
    with pytest.raises(TrainingDiverged, match=r"became nan at epoch 2, step 2.*last.pt keeps epoch 1"):
        train(_config(tmp_path / "run"), log=lambda m: None)
    assert read_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1


@pytest.mark.slow
def test_student_distils_with_at_and_kd(tmp_path, teacher_run):
    spec, _ = StudentSpec.create(Architecture("wrn_16_1", {"num_classes": 10}, (3, 32, 32)),
                                 {"block1.layer.0.conv1": 8, "block2.layer.0.conv1": 16}, "half")
    spec_path = spec.save(tmp_path / "half.json")
    config = _config(tmp_path / "student", model=str(spec_path), role="student", epochs=1,
                     teacher=str(teacher_run[0] / "last.pt"), at_beta=1e3, kd_alpha=0.5)
    summary = train(config, log=lambda m: None)
    row = json.loads((tmp_path / "student" / "metrics.jsonl").read_text())
    assert row["train_at"] > 0 and row["train_kd"] > 0
    assert row["train_loss"] == pytest.approx(0.5 * row["train_ce"] + 0.5 * row["train_kd"] + 1e3 * row["train_at"],
                                              rel=1e-4)
    model, _, rebuilt = model_from_checkpoint(tmp_path / "student" / "last.pt")
    assert rebuilt.widths == spec.widths and summary.params == spec.params


def test_distillation_inputs_are_checked(tmp_path, teacher_run):
    ckpt = str(teacher_run[0] / "last.pt")
    with pytest.raises(StaircaseError, match="2 attention point.*the teacher 3"):
        train(_config(tmp_path / "a", role="student", teacher=ckpt, at_beta=1e3,
                      student_points=["block1", "block2"]), log=lambda m: None)
    with pytest.raises(StaircaseError, match=r"no module\(s\) \['block9'\]"):
        train(_config(tmp_path / "b", role="student", teacher=ckpt, at_beta=1e3,
                      teacher_points=["block1", "block2", "block9"]), log=lambda m: None)
    spec, _ = StudentSpec.create(Architecture("wrn_16_2", {"num_classes": 10}, (3, 32, 32)), {"block1.layer.0.conv1": 8})
    path = spec.save(tmp_path / "of_16_2.json")
    with pytest.raises(StaircaseError, match="holds a wrn_16_1 but .*designed from wrn_16_2"):
        train(_config(tmp_path / "c", model=str(path), role="student", teacher=ckpt), log=lambda m: None)
    torch.save(read_checkpoint(ckpt)["model"], tmp_path / "bare.pt")  # wrn_16_1 weights, no description
    with pytest.raises(StaircaseError, match="does not fit wrn_16_2"):
        train(_config(tmp_path / "d", model=str(path), role="student", teacher=str(tmp_path / "bare.pt")),
              log=lambda m: None)
    with pytest.raises(StaircaseError, match="need a teacher"):
        train(_config(tmp_path / "e", role="student", at_beta=1.0), log=lambda m: None)


def test_rng_state_round_trips():
    import random

    import numpy as np

    state = rng_state()
    a = (torch.rand(3), random.random(), np.random.rand())
    set_rng_state(state)
    b = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


@pytest.mark.slow
@pytest.mark.backend
def test_evaluate_and_export_from_the_command_line(tmp_path, teacher_run, capsys):
    ckpt = str(teacher_run[0] / "last.pt")
    assert main(["evaluate", ckpt, "--data", "digits", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["top1"] == pytest.approx(teacher_run[1].final_top1)
    pytest.importorskip("onnxruntime")
    assert main(["export", ckpt, "--out", str(tmp_path / "m.onnx"), "--json"]) == 0
    onnx_result = json.loads(capsys.readouterr().out)
    assert onnx_result["check"]["max_abs_diff"] < 1e-4 and onnx_result["check"]["within_tolerance"]
    pytest.importorskip("openvino")
    assert main(["export", ckpt, "--format", "openvino", "--out", str(tmp_path / "ir" / "m.xml"), "--json"]) == 0
    ov_result = json.loads(capsys.readouterr().out)
    check = ov_result["check"]
    assert check["max_abs_diff"] < 1e-3 and check["within_tolerance"] and (tmp_path / "ir" / "m.bin").exists()


def test_train_command_trains_and_refuses_a_teacher_flag_for_teachers(tmp_path, capsys):
    args = ["train", "teacher", "wrn_16_1", "--data", "digits", "--epochs", "1", "--train-images", "128",
            "--batch-size", "64", "--no-progress", "--out", str(tmp_path / "t")]
    assert main(args + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs"] == 1
    assert main(args[:-2] + ["--out", str(tmp_path / "u"), "--teacher", "x.pt"]) == 1
    assert "are for `staircase train student`" in capsys.readouterr().err


def test_init_starts_from_given_weights_and_refuses_weights_that_do_not_fit(tmp_path, teacher_run):
    ckpt = teacher_run[0] / "last.pt"
    # one epoch at a negligible learning rate: the weights stay the teacher's, and so does its accuracy
    summary = train(_config(tmp_path / "ft", epochs=1, lr=1e-9, init=str(ckpt)), log=lambda m: None)
    assert summary.final_top1 == pytest.approx(teacher_run[1].final_top1, abs=1.0)
    weights, start = _weights(tmp_path / "ft" / "last.pt"), _weights(ckpt)
    learned = [k for k in start if not any(b in k for b in ("running_", "num_batches"))]  # BN statistics move
    assert learned and all(torch.allclose(weights[k], start[k], atol=1e-5) for k in learned)
    with pytest.raises(StaircaseError, match="does not fit wrn_16_2"):
        train(_config(tmp_path / "bad", model="wrn_16_2", epochs=1, init=str(ckpt)), log=lambda m: None)


def test_warmup_runs_at_a_tenth_then_the_schedule_takes_the_remaining_epochs():
    import torch

    from staircase.train.trainer import TrainConfig, make_scheduler

    def lrs(**kw):
        opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
        sched = make_scheduler(opt, TrainConfig(model="m", data="d", out="o", epochs=6, lr=0.1, **kw))
        out = []
        for _ in range(6):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    assert lrs(schedule="cosine")[0] == pytest.approx(0.1)
    warm = lrs(schedule="cosine", warmup_epochs=1)
    assert warm[:2] == pytest.approx([0.01, 0.1]) and warm[-1] < 0.01
    assert lrs(schedule="step", milestones=[0.4], warmup_epochs=1) == pytest.approx([0.01, 0.1, 0.1, 0.02, 0.02, 0.02])
    with pytest.raises(StaircaseError, match="--warmup-epochs"):
        TrainConfig(model="m", data="d", out="o", epochs=2, warmup_epochs=2).check()


def test_runs_of_different_seeds_hold_out_the_same_validation_images(tmp_path):
    def held_out(seed, split_seed=0):
        config = TrainConfig(model="wrn_16_1", data="digits", out=str(tmp_path / f"r{seed}"), val_split=0.1,
                             seed=seed, split_seed=split_seed, epochs=1)
        return trainer_module._build(config, tmp_path / f"r{seed}", torch.device("cpu"), 0, 1, lambda m: None).data.test.images

    assert torch.equal(held_out(0), held_out(1)) and not torch.equal(held_out(0), held_out(0, split_seed=1))
