"""Distiller-style pruning schedules: parsed, checked, applied for real."""

import pytest
import torch

from staircase.errors import StaircaseError
from staircase.models import create_model
from staircase.search.schedule import Schedule, apply_schedule, schedule_widths, shipped_schedule
from staircase.slots import slot_widths

SIZE = (3, 32, 32)


def _schedule(**pruner):
    spec = {"class": "L1RankedStructureParameterPruner", "group_type": "Filters", "desired_sparsity": 0.5,
            "weights": ["module.layer1.0.conv1.weight"], **pruner}
    return Schedule.from_dict({"pruners": {"p": spec}}, "test.yaml")


def test_the_shipped_resnet56_schedule_prunes_the_off_the_shelf_widths_for_real():
    schedule = shipped_schedule()
    assert schedule.model == "resnet56" and schedule.sparsities() == {
        "layer1_conv1": 0.7, "layer2_conv1": 0.6, "layer3_1_conv1": 0.2, "layer3_conv1": 0.4}
    assert sum(len(p.weights) for p in schedule.pruners) == 9 + 6 + 1 + 6
    model = create_model("resnet56")
    before = sum(p.numel() for p in model.parameters())
    expected = schedule_widths(model, SIZE, schedule)
    widths = apply_schedule(model, SIZE, schedule)
    assert widths == expected
    assert widths["layer1.0.conv1"] == round(0.3 * 16) and widths["layer2.1.conv1"] == round(0.4 * 32)
    assert widths["layer3.1.conv1"] == round(0.8 * 64) and widths["layer3.8.conv1"] == round(0.6 * 64)
    assert model.layer1[0].conv1.weight.shape[0] == 5 and model.layer1[0].conv2.weight.shape[1] == 5
    assert model.layer2[0].conv1.weight.shape[0] == 32  # not in the schedule
    assert sum(p.numel() for p in model.parameters()) < 0.8 * before
    assert model(torch.randn(2, *SIZE)).shape == (2, 10)
    assert slot_widths(model, SIZE)["layer1.0.conv1"] == 5


def test_l1_keeps_the_strongest_filters():
    model = create_model("resnet56")
    conv = model.layer1[0].conv1
    with torch.no_grad():
        conv.weight.mul_(0.01)
        conv.weight[[3, 7, 11]] *= 1000  # the three strongest filters
        kept = conv.weight[[3, 7, 11]].clone()
    apply_schedule(model, SIZE, _schedule(desired_sparsity=0.8))
    assert torch.equal(model.layer1[0].conv1.weight.data, kept)


def test_channels_group_prunes_a_convs_inputs():
    model = create_model("resnet56")
    apply_schedule(model, SIZE, _schedule(group_type="Channels", weights=["layer1.0.conv2.weight"]))
    assert model.layer1[0].conv2.weight.shape[1] == 8 and model.layer1[0].conv1.weight.shape[0] == 8


@pytest.mark.parametrize("change, message", [
    ({"weights": ["module.layer1.0.conv9.weight"]}, r"no convolution weight module.layer1.0.conv9.weight; did you mean"),
    ({"desired_sparsity": 1.0}, r"sparsity 1.0 must be in \[0, 1\)"),
    ({"desired_sparsity": -0.1}, r"must be in \[0, 1\)"),
    ({"class": "Magic"}, "class 'Magic' is not one of"),
    ({"group_type": "Kernels"}, "group_type 'Kernels' must be Filters or Channels"),
    ({"search": [0.8, 0.2]}, "has low above high"),
    ({"weights": ["layer1.0.conv2"]}, "is not a weight name"),
])
def test_bad_schedules_name_the_problem(change, message):
    with pytest.raises(StaircaseError, match=message):
        apply_schedule(create_model("resnet56"), SIZE, _schedule(**change))


def test_a_residual_weight_prunes_its_whole_stage_and_the_input_cannot_be_pruned():
    model = create_model("resnet56")
    apply_schedule(model, SIZE, _schedule(weights=["layer1.0.conv2.weight"]))  # tied to the stage's adds
    assert model.conv1.weight.shape[0] == 8 and all(b.conv2.weight.shape[0] == 8 for b in model.layer1)
    assert model.layer2[0].conv1.weight.shape[1] == 8 and model(torch.randn(1, *SIZE)).shape == (1, 10)
    with pytest.raises(StaircaseError, match="cannot be pruned alone"):
        apply_schedule(create_model("resnet56"), SIZE, _schedule(group_type="Channels", weights=["conv1.weight"]))


def test_schedule_files_are_checked(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pruners: [1, 2")
    with pytest.raises(StaircaseError, match="not valid YAML"):
        Schedule.load(bad)
    with pytest.raises(StaircaseError, match="shipped schedules: resnet56_cifar10"):
        Schedule.load(tmp_path / "missing.yaml")
    assert Schedule.load("resnet56_cifar10").retrain["epochs"] == 10
    twice = {"class": "L1", "desired_sparsity": 0.1, "weights": ["layer1.0.conv1.weight"]}
    with pytest.raises(StaircaseError, match="named by pruners 'a' and 'b'"):
        Schedule.from_dict({"pruners": {"a": twice, "b": twice}})
    with pytest.raises(StaircaseError, match="unknown retrain setting"):
        Schedule.from_dict({"pruners": {"a": twice}, "retrain": {"epocs": 3}})


def test_with_sparsities_replaces_and_checks():
    s = shipped_schedule()
    t = s.with_sparsities({"layer1_conv1": 0.5})
    assert t.sparsities()["layer1_conv1"] == 0.5 and s.sparsities()["layer1_conv1"] == 0.7
    assert t.fingerprint() == s.fingerprint()
    with pytest.raises(StaircaseError, match="no pruner"):
        s.with_sparsities({"nope": 0.1})
    with pytest.raises(StaircaseError, match="must be in"):
        s.with_sparsities({"layer1_conv1": 1.5})
