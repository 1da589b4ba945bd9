import pytest
import torch

from staircase import count_macs, count_params, create_model, list_models
from staircase.errors import UnknownModelError
from staircase.models import ZooModel

# published sizes (issue 2; torchvision for the ImageNet models), in parameters
PUBLISHED = {
    "wrn_40_2": 2.2e6,
    "resnet56": 0.85e6,
    "resnet34": 21.8e6,
    "densenet_bc_100_12": 0.77e6,
    "densenet121": 8.0e6,
    "mobilenet_cifar": 3.2e6,
    "mobilenet_v2": 3.5e6,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_parameter_counts(name):
    params = count_params(create_model(name))
    assert abs(params - PUBLISHED[name]) / PUBLISHED[name] < 0.02, params


def _wrn_params_by_hand(depth, k, classes=10):
    n = (depth - 4) // 6
    widths = [16, 16 * k, 32 * k, 64 * k]
    total = 3 * 9 * 16  # stem conv
    for stage in range(3):
        cin, cout = widths[stage], widths[stage + 1]
        for b in range(n):
            c = cin if b == 0 else cout
            total += 2 * c + c * cout * 9 + 2 * cout + cout * cout * 9  # bn1, conv1, bn2, conv2
            if c != cout or (b == 0 and stage > 0):
                total += c * cout  # 1x1 projection
    return total + 2 * widths[3] + widths[3] * classes + classes


def test_wrn_16_1_exact_size():
    # The AT paper prints 0.17M: 175,066 truncated (2.98% above the literal 0.17M figure).
    assert count_params(create_model("wrn_16_1")) == _wrn_params_by_hand(16, 1) == 175_066
    assert count_params(create_model("wrn_40_2")) == _wrn_params_by_hand(40, 2)


@pytest.mark.parametrize("name", list_models())
def test_forward_at_declared_input_and_contract(name):
    model = create_model(name, num_classes=7).eval()
    assert isinstance(model, ZooModel)
    c, h, w = model.input_size
    with torch.no_grad():
        assert model(torch.randn(2, c, h, w)).shape == (2, 7)
    modules = dict(model.named_modules())
    assert len(model.attention_points) >= 3
    assert all(p in modules for p in model.attention_points)
    assert model.inner_slots


def test_attention_points_shrink_in_resolution():
    model = create_model("wrn_40_2").eval()
    shapes = []
    hooks = [model.get_submodule(p).register_forward_hook(lambda m, i, o: shapes.append(o.shape)) for p in model.attention_points]
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert [tuple(s[1:]) for s in shapes] == [(32, 32, 32), (64, 16, 16), (128, 8, 8)]


def test_wrn_pattern_and_bad_depth():
    assert count_params(create_model("wrn_28_10")) == pytest.approx(36.5e6, rel=0.01)
    with pytest.raises(UnknownModelError, match="model 'wrn_41_2': WRN depth must be 6n\\+4"):
        create_model("wrn_41_2")


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError, match="did you mean.*wrn_40_2"):
        create_model("wrn_40_3x")


def test_macs_match_hand_count():
    # ResNet-34 at 224: 3.6 GMACs in the paper's table; a one-conv net by hand
    assert count_macs(create_model("resnet34"), (3, 224, 224)) == pytest.approx(3.6e9, rel=0.02)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 2))
    assert count_macs(net, (3, 8, 8)) == 4 * 8 * 8 * 3 * 9 + 4 * 8 * 8 * 2


@pytest.mark.slow
def test_torchvision_weights_load_when_available():
    import importlib.util

    from staircase.architecture import call_factory

    if importlib.util.find_spec("torchvision") is None:  # optional: the [vision] extra
        pytest.skip("torchvision not installed")
    for name in ("resnet34", "densenet121", "mobilenet_v2"):
        ours = create_model(name)
        ours.load_state_dict(call_factory(f"torchvision.models:{name}", {}).state_dict())
