import random

import pytest
import torch
from user_nets import TinyResConcat

from staircase import count_params, create_model, find_slots, make_student
from staircase.errors import SlotError, WidthError
from staircase.slots import SlotGraph, slot_widths


@pytest.mark.parametrize(
    "name,count",
    [("wrn_40_2", 18), ("resnet34", 16), ("resnet56", 27), ("mobilenet_cifar", 13), ("densenet_bc_100_12", 48)],
)
def test_default_slot_counts(name, count):
    slots = find_slots(create_model(name))
    assert len(slots) == count
    assert all(s.inner and not s.residual and not s.concatenated for s in slots)


def test_wrn_slots_describe_what_they_change():
    graph = SlotGraph(create_model("wrn_40_2"), (3, 32, 32))
    slot = graph["block2.layer.0.conv1"]
    assert slot.width == 64
    roles = {(m.module, m.role) for m in slot.members}
    assert roles == {
        ("block2.layer.0.conv1", "producer"),
        ("block2.layer.0.bn2", "norm"),
        ("block2.layer.0.conv2", "consumer"),
    }
    shapes = {m.module: m.input_shape for m in slot.members}
    assert shapes["block2.layer.0.conv1"] == (1, 32, 32, 32)  # stride-2 conv sees the 32x32 map
    assert shapes["block2.layer.0.conv2"] == (1, 64, 16, 16)
    streams = [s for s in graph.slots if s.residual]
    assert [s.width for s in streams] == [32, 64, 128]
    assert not any(s.name == "fc" for s in graph.slots)  # classifier outputs are never a slot


def test_mobilenet_pointwise_slots_carry_the_next_depthwise():
    slots = find_slots(create_model("mobilenet_cifar"))
    assert [s.name for s in slots][:2] == ["layers.0.conv_pw", "layers.1.conv_pw"]
    assert all(s.depthwise for s in slots[:-1]) and not slots[-1].depthwise
    all_slots = find_slots(create_model("mobilenet_cifar"), include_all=True)
    stem = [s for s in all_slots if s.stem]
    assert len(stem) == 1 and stem[0].name == "conv1" and not stem[0].inner


def test_densenet_concat_slots_are_flagged():
    slots = find_slots(create_model("densenet_bc_100_12"), include_all=True)
    growth = [s for s in slots if s.name.endswith("denselayer1.conv2")]
    assert growth and all(s.concatenated and not s.inner for s in growth)


def _expected_wrn_params(teacher, widths):
    # each inner slot of width w in a block cin->cout: conv1 cin*9*w, bn2 2w, conv2 w*9*cout
    total = count_params(teacher)
    for name, w in widths.items():
        conv1 = teacher.get_submodule(name)
        cin, cout = conv1.in_channels, conv1.out_channels
        total -= (cin * 9 + 2 + 9 * cout) * (cout - w)
    return total


@pytest.mark.parametrize("name", ["wrn_16_2", "resnet20"])
def test_random_width_students_have_expected_params(name):
    teacher = create_model(name)
    rng = random.Random(1)
    for _ in range(3):
        widths = {s.name: rng.randint(1, s.width) for s in find_slots(teacher)}
        student = make_student(teacher, widths).eval()
        assert count_params(student) == _expected_wrn_params(teacher, widths)
        assert student(torch.randn(2, 3, 32, 32)).shape == (2, 10)
        assert {s.name: s.width for s in find_slots(student)} == widths
    assert count_params(teacher) == count_params(create_model(name))  # teacher untouched


def test_mobilenet_student_params_by_reference_formula():
    teacher = create_model("mobilenet_cifar")
    rng = random.Random(2)
    widths = {s.name: rng.randint(1, s.width) for s in find_slots(teacher)}
    outs = list(widths.values())
    expected = 3 * 9 * 32 + 2 * 32  # stem conv + bn
    cin = 32
    for cout in outs:  # depthwise 3x3 + bn, pointwise 1x1 + bn
        expected += 9 * cin + 2 * cin + cin * cout + 2 * cout
        cin = cout
    expected += cin * 10 + 10
    assert count_params(make_student(teacher, widths)) == expected


def test_densenet_student_params():
    teacher = create_model("densenet_bc_100_12")
    slots = find_slots(teacher)
    widths = {s.name: 7 for s in slots[::5]}
    removed = sum((teacher.get_submodule(n).in_channels + 2 + 9 * 12) * (48 - 7) for n in widths)
    assert count_params(make_student(teacher, widths)) == count_params(teacher) - removed


def test_all_slots_including_residual_streams():
    teacher = create_model("resnet20")
    slots = find_slots(teacher, include_all=True)
    widths = {s.name: max(1, s.width // 3) for s in slots}
    student = make_student(teacher, widths).eval()
    assert student(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert student.conv1.out_channels == 5 and student.layer3[2].conv2.out_channels == 21


def test_user_module_gets_slots_and_a_student():
    net = TinyResConcat()
    slots = {s.name: s for s in find_slots(net, (3, 16, 16), include_all=True)}
    # b1 and b2 are concatenated into a depthwise conv: DepGraph ties them into one 10-channel slot
    assert set(slots) == {"stem", "a1", "dw"}
    assert slots["stem"].residual and slots["stem"].stem
    assert slots["dw"].width == 10 and slots["dw"].concatenated and slots["dw"].depthwise
    assert not slots["dw"].residual
    assert not slots["a1"].residual and slots["a1"].inner
    assert [s.name for s in find_slots(net, (3, 16, 16))] == ["a1"]  # default: not tied by add/concat
    student = make_student(net, {"a1": 3, "dw": 5, "stem": 5}, input_size=(3, 16, 16))
    assert student(torch.randn(1, 3, 16, 16)).shape == (1, 5)
    assert (student.a1.out_channels, student.stem.out_channels) == (3, 5)
    # the 5 concatenated channels are shared 6:4 -> 3:2, every producer keeps at least one
    assert (student.b1.out_channels, student.b2.out_channels, student.dw.in_channels) == (3, 2, 5)
    tiny = make_student(net, {"dw": 2}, input_size=(3, 16, 16))
    assert (tiny.b1.out_channels, tiny.b2.out_channels) == (1, 1)
    with pytest.raises(WidthError, match="below 2, the number of producers it concatenates"):
        make_student(net, {"dw": 1}, input_size=(3, 16, 16))


def test_student_is_freshly_initialised_unless_asked():
    teacher = create_model("wrn_16_1")
    w = {"block1.layer.0.conv1": 8}
    fresh = make_student(teacher, w)
    kept = make_student(teacher, w, init=False)
    t = teacher.block1.layer[0].conv1.weight
    assert torch.equal(kept.block1.layer[0].conv1.weight, t[:8])
    assert not torch.equal(fresh.block1.layer[0].conv1.weight, t[:8])


@pytest.mark.parametrize(
    "widths,message",
    [
        ({"block1.layer.0.conv1": 0}, "slot 'block1.layer.0.conv1': width 0 is below 1"),
        ({"block1.layer.0.conv1": 33}, "slot 'block1.layer.0.conv1': width 33 is above the teacher's 32"),
        ({"block1.layer.0.conv": 3}, "unknown slot 'block1.layer.0.conv': did you mean"),
        ({"block1.layer.0.conv1": 2.5}, "slot 'block1.layer.0.conv1': width 2.5 is not an integer"),
    ],
)
def test_bad_widths_are_refused_naming_the_slot(widths, message):
    with pytest.raises(WidthError) as err:
        make_student(create_model("wrn_16_2"), widths)
    assert message in str(err.value)


def test_untraceable_input_size_is_a_clear_error():
    with pytest.raises(SlotError, match="input size"):
        find_slots(create_model("resnet20"), (3, 1))
    with pytest.raises(SlotError, match="--input-shape"):
        find_slots(TinyResConcat())


@pytest.mark.slow
@pytest.mark.parametrize("package,factory,slots", [
    ("torchvision", "torchvision.models:resnet18", 8),
    ("timm", "timm.models:resnet18", 8),
])
def test_torchvision_and_timm_models_when_installed(package, factory, slots):
    import importlib.util

    from staircase.modelref import resolve_model

    if importlib.util.find_spec(package) is None:  # optional: the [vision] extra
        pytest.skip(f"{package} is not installed")
    resolved = resolve_model(factory, input_size=(3, 64, 64))
    found = find_slots(resolved.model, (3, 64, 64))
    assert len(found) == slots
    student = make_student(resolved.model, {s.name: 16 for s in found}, input_size=(3, 64, 64))
    assert student(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
    assert all(w == 16 for n, w in slot_widths(student, (3, 64, 64)).items() if n in {s.name for s in found})
