"""Students that start from the teacher's weights, and the baselines users would try."""

import json

import pytest
import torch
from helpers import one_line_error
from user_nets import TinyResConcat

from staircase.design.baselines import l1_scores, round_widths
from staircase.design.inherit import channel_scores, inherit
from staircase.models import create_model
from staircase.slots import find_slots, slot_widths


def _eval(model, x):
    with torch.no_grad():
        return model.eval()(x)


def test_a_student_that_keeps_every_width_computes_what_the_teacher_does():
    teacher = create_model("wrn_16_1").eval()
    widths = {s.name: s.width for s in find_slots(teacher)}
    student, kept = inherit(teacher, widths, {n: [0.0] * w for n, w in widths.items()})
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(_eval(student, x), _eval(teacher, x), atol=1e-6)
    assert all(kept[n] == list(range(w)) for n, w in widths.items())


def test_the_kept_channels_are_the_highest_scoring_and_carry_their_weights():
    teacher = create_model("wrn_16_1").eval()
    name = "block2.layer.0.conv1"  # 32 channels
    scores = {name: [float((7 * i) % 32) for i in range(32)]}  # a hand-made ranking
    student, kept = inherit(teacher, {name: 5}, scores)
    best = sorted(range(32), key=lambda i: -scores[name][i])[:5]
    assert kept[name] == sorted(best)
    conv = dict(teacher.named_modules())[name]
    assert torch.equal(dict(student.named_modules())[name].weight, conv.weight[sorted(best)])
    nxt = dict(teacher.named_modules())["block2.layer.0.conv2"]  # the consumer keeps the same input channels
    assert torch.equal(dict(student.named_modules())["block2.layer.0.conv2"].weight, nxt.weight[:, sorted(best)])
    assert slot_widths(student)[name] == 5


def test_a_student_of_a_pruning_runs_widths_keeps_exactly_the_channels_the_run_kept():
    """A removed channel's saliency (measured when it went) can exceed a survivor's current
    one; the student still keeps the survivors, and at a wider width the last removed."""
    from staircase.widths import WidthsFile

    teacher = create_model("wrn_16_1").eval()
    name = "block2.layer.0.conv1"  # 32 channels
    survivors, removed = [30, 2, 17, 9], [c for c in range(32) if c not in (30, 2, 17, 9)]
    pruned = WidthsFile({name: 4}, {name: [0.1, 0.2, 0.3, 0.4] + [5.0 + i for i in range(28)]}, [name] * 28,
                        "fisher-pruned", "wrn_16_1", channels={name: survivors + removed})
    scores, ranked_by = channel_scores(teacher, [name], widths_file=pruned)
    assert ranked_by == "fisher"
    assert inherit(teacher, {name: 4}, scores)[1][name] == sorted(survivors)
    assert inherit(teacher, {name: 6}, scores)[1][name] == sorted(survivors + removed[-2:])


def test_an_l1_pruned_widths_file_lists_its_kept_channels_first(run_cli, tmp_path):
    out = tmp_path / "l1.json"
    run_cli("prune", "wrn_16_1", "--method", "l1", "--target-channels", "150", "--out", str(out))
    pruned = json.loads(out.read_text())
    assert len(pruned["removed"]) == sum(len(pruned["channels"][n]) for n in pruned["widths"]) - 150
    for name, width in pruned["widths"].items():
        kept, gone = pruned["saliency"][name][:width], pruned["saliency"][name][width:]
        assert sorted(pruned["channels"][name]) == list(range(len(kept) + len(gone)))
        assert gone == sorted(gone) and (not gone or min(kept) >= max(gone))


def test_a_model_from_no_zoo_inherits_even_across_a_concatenation():
    teacher = TinyResConcat().eval()
    slots = {s.name: s.width for s in find_slots(teacher, (3, 8, 8), include_all=True)}
    widths = {n: max(2, w // 2) for n, w in slots.items()}
    scores, ranked_by = channel_scores(teacher, list(widths), (3, 8, 8))
    student, kept = inherit(teacher, widths, scores, (3, 8, 8))
    assert ranked_by == "l1" and {n: len(k) for n, k in kept.items()} == widths
    assert _eval(student, torch.randn(1, 3, 8, 8)).shape == (1, 5)
    assert slot_widths(student, (3, 8, 8)) == {**slots, **widths}


def test_round_to_rounds_each_width_to_a_multiple_within_the_slot():
    full = {"a": 64, "b": 24, "c": 10}
    # down to a multiple of 16, at least one multiple, never past the slot's own width
    assert round_widths({"a": 37, "b": 7, "c": 9}, full, 16) == {"a": 32, "b": 16, "c": 10}
    assert round_widths({"a": 63, "b": 24, "c": 1}, full, 16) == {"a": 48, "b": 16, "c": 10}
    assert round_widths({"a": 64, "b": 15, "c": 10}, full, 8) == {"a": 64, "b": 8, "c": 8}


@pytest.mark.slow
def test_student_inherit_writes_weights_that_evaluate_export_and_init_take(run_cli, tmp_path):
    r = run_cli("train", "teacher", "wrn_16_1", "--data", "digits", "--epochs", "1", "--train-images", "128",
                "--no-progress", "--out", "t")
    assert r.returncode == 0, r.stderr
    r = run_cli("prune", "wrn_16_1", "--checkpoint", "t/last.pt", "--data", "digits", "--target-channels", "200",
                "--batch-size", "16", "--out", "w.json")
    assert r.returncode == 0, r.stderr
    widths = json.loads((tmp_path / "w.json").read_text())
    assert widths["version"] == 2 and all(sorted(c) == list(range(len(c))) for c in widths["channels"].values())
    r = run_cli("student", "wrn_16_1", "--widths", "w.json", "--inherit", "t/last.pt", "--data", "digits",
                "--val-split", "0.1", "--split-seed", "3", "--out", "s/s.json")
    assert r.returncode == 0, r.stderr
    assert "its most important channels by fisher, in s/s.pt" in r.stdout
    spec = json.loads((tmp_path / "s" / "s.json").read_text())
    init = spec["provenance"]["init"]
    assert spec["version"] == 2 and init["from"] == "t/last.pt" and init["ranked_by"] == "fisher"
    assert init["batchnorm"] == {"data": "digits", "batches": 8, "batch_size": 128, "val_split": 0.1, "split_seed": 3}
    assert {n: len(k) for n, k in init["kept"].items()} == {n: w for n, w in widths["widths"].items()
                                                             if w != spec["teacher_widths"][n]}
    assert (tmp_path / "s" / "s.pt").exists()
    r = run_cli("evaluate", "s/s.pt", "--data", "digits", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["images"] == 360
    assert run_cli("export", "s/s.pt").returncode == 0
    r = run_cli("train", "student", "s/s.json", "--init", "s/s.pt", "--teacher", "t/last.pt", "--data", "digits",
                "--epochs", "1", "--train-images", "64", "--no-progress", "--out", "st")
    assert r.returncode == 0, r.stderr
    assert "starting from the weights in s/s.pt" in r.stdout and "BatchNorm statistics measured again" in r.stdout
    one_line_error(run_cli("student", "wrn_16_2", "--scale", "0.5", "--inherit", "t/last.pt", "--out", "x.json"),
                   "t/last.pt does not fit wrn_16_2")


def test_stages_are_found_where_a_model_declares_no_attention_points():
    from staircase.train.attention import attention_points, stage_points

    resnet = create_model("resnet20")
    assert stage_points(resnet, (3, 32, 32)) == list(resnet.attention_points)  # the declared ones, found
    assert attention_points(TinyResConcat(), None, "teacher", (3, 8, 8)) == ["dw"]
    assert attention_points(TinyResConcat(), ["a1"], "teacher", (3, 8, 8)) == ["a1"]  # named ones win


@pytest.mark.slow
def test_attention_transfer_pairs_a_model_from_no_zoo_with_its_student_by_itself(run_cli, tmp_path):
    model = ("user_nets:tiny_res_concat", "--input-shape", "3,8,8")
    r = run_cli("train", "teacher", *model, "--data", "digits", "--epochs", "1", "--train-images", "64",
                "--no-progress", "--out", "t")
    assert r.returncode == 0, r.stderr
    assert run_cli("student", *model, "--num-classes", "10", "--scale", "0.5", "--out", "s.json").returncode == 0
    r = run_cli("train", "student", "s.json", "--teacher", "t/last.pt", "--data", "digits", "--epochs", "1",
                "--train-images", "64", "--no-progress", "--out", "st")
    assert r.returncode == 0, r.stderr
    assert "attention transfer (beta 1000) over 1 point pairs: dw~dw" in r.stdout


def test_the_l1_bn_ranking_weighs_each_filter_by_the_batchnorm_scale_after_it():
    from staircase.design.inherit import normed_l1_scores
    from staircase.slots import SlotGraph

    teacher = create_model("wrn_16_1").eval()
    name = "block2.layer.0.conv1"
    conv, bn = teacher.get_submodule(name), teacher.get_submodule("block2.layer.0.bn2")
    with torch.no_grad():
        conv.weight.fill_(0.1)
        conv.weight[3] = 1.0  # the largest filter ...
        bn.weight.fill_(1.0)
        bn.weight[3] = 1e-3  # ... scaled almost to nothing by its norm
        bn.running_var.fill_(1.0)
        bn.running_var[5] = 0.01  # a small filter whose norm divides by a small sigma: amplified
    graph = SlotGraph(teacher, (3, 32, 32))
    raw, normed = l1_scores(graph, [name])[name], normed_l1_scores(graph, [name])[name]
    assert max(range(len(raw)), key=raw.__getitem__) == 3
    assert min(range(len(normed)), key=normed.__getitem__) == 3
    assert max(range(len(normed)), key=normed.__getitem__) == 5


def test_batchnorm_statistics_are_measured_again_without_a_gradient_step():
    from torch.utils.data import TensorDataset

    from staircase.train.batchnorm import reestimate_batchnorm

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1, bias=False), torch.nn.BatchNorm2d(4))
    x = torch.randn(256, 3, 5, 5) * 3 + 2
    before = [p.clone() for p in model.parameters()]
    assert reestimate_batchnorm(model, TensorDataset(x, torch.zeros(256)), batches=2, batch_size=128) == 1
    with torch.no_grad():
        y = model[0](x)
    bn = model[1]
    assert torch.allclose(bn.running_mean, y.mean((0, 2, 3)), atol=1e-5)  # the cumulative average, all 256
    assert torch.allclose(bn.running_var, y.var((0, 2, 3)), rtol=0.05)
    assert bn.momentum == 0.1 and not model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert reestimate_batchnorm(torch.nn.Linear(3, 2), TensorDataset(x, x)) == 0  # nothing to measure
