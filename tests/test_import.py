"""`staircase import`: a torchvision/timm state dict becomes a checkpoint every command reads."""

import pytest
import torch

from staircase.cli import main
from staircase.train.checkpoint import model_from_checkpoint


@pytest.fixture(scope="module")
def resnet18():
    from staircase._compat import import_vision_package

    models = import_vision_package("torchvision.models")
    torch.manual_seed(0)
    model = models.resnet18(num_classes=10).eval()
    with torch.no_grad():  # BatchNorm statistics that are not the defaults: a load that skipped them would show
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def _import(tmp_path, weights, *extra):
    return main(["import", "torchvision.models:resnet18", "--num-classes", "10", "--input-shape", "3,32,32",
                 "--weights", str(weights), "--out", str(tmp_path / "t.pt"), *extra])


def test_a_torchvision_state_dict_round_trips_to_the_same_logits(tmp_path, resnet18):
    torch.save(resnet18.state_dict(), tmp_path / "w.pth")
    assert _import(tmp_path, tmp_path / "w.pth") == 0
    model, arch, spec = model_from_checkpoint(tmp_path / "t.pt")
    assert spec is None and arch.name == "torchvision.models:resnet18" and tuple(arch.input_size) == (3, 32, 32)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model.eval()(x), resnet18(x))
    assert main(["evaluate", str(tmp_path / "t.pt"), "--data", "digits"]) == 0  # what every command reads


def test_wrapped_and_prefixed_and_safetensors_weights_load_the_same(tmp_path, resnet18):
    state = {f"module.{k}": v for k, v in resnet18.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 90}, tmp_path / "ddp.pt")
    assert _import(tmp_path, tmp_path / "ddp.pt") == 0
    first = model_from_checkpoint(tmp_path / "t.pt")[0].state_dict()
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in resnet18.state_dict().items()}, str(tmp_path / "w.safetensors"))
    assert _import(tmp_path, tmp_path / "w.safetensors") == 0
    second = model_from_checkpoint(tmp_path / "t.pt")[0].state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_another_architecture_s_weights_are_one_line_naming_a_key_and_both_shapes(tmp_path, resnet18, capsys):
    torch.save(resnet18.state_dict(), tmp_path / "w.pth")
    assert main(["import", "torchvision.models:resnet34", "--num-classes", "10", "--input-shape", "3,32,32",
                 "--weights", str(tmp_path / "w.pth"), "--out", str(tmp_path / "t.pt")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "weights missing (e.g. layer1.2." in err and not (tmp_path / "t.pt").exists()
    assert main(["import", "torchvision.models:resnet18", "--input-shape", "3,32,32", "--weights",
                 str(tmp_path / "w.pth"), "--out", str(tmp_path / "t.pt")]) == 1  # 1000 classes: another classifier
    err = capsys.readouterr().err.strip()
    assert "fc.weight: [10, 512] in the checkpoint, [1000, 512] in the model" in err


def test_bad_weights_files_and_flags_are_one_clear_error(tmp_path, capsys):
    (tmp_path / "junk.pth").write_bytes(b"not a tensor file")
    torch.save({"lr": 0.1}, tmp_path / "nostate.pt")
    for extra, said in ((["--weights", str(tmp_path / "junk.pth")], "cannot be read as a torch state dict"),
                        (["--weights", str(tmp_path / "nostate.pt")], "holds no state dict"),
                        (["--weights", str(tmp_path / "absent.pt")], "does not exist"),
                        ([], "give the weights"),
                        (["--pretrained"], "is not a timm model")):
        assert main(["import", "torchvision.models:resnet18", "--input-shape", "3,32,32", "--out",
                     str(tmp_path / "t.pt"), *extra]) == 1, extra
        assert said in capsys.readouterr().err, extra


def test_timm_pretrained_weights_come_from_the_cache_or_the_error_says_how_to_pass_them(tmp_path, monkeypatch,
                                                                                       capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))  # nothing cached: no download is tried either
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    assert main(["import", "timm.models:resnet18", "--num-classes", "10", "--pretrained",
                 "--out", str(tmp_path / "t.pt")]) == 1
    err = capsys.readouterr().err
    assert "cache holds no pretrained weights for resnet18" in err and "--weights FILE" in err


def test_a_checkpoint_whose_classifier_differs_names_num_classes(tmp_path):
    from staircase.architecture import Architecture
    from staircase.errors import StaircaseError
    from staircase.models import create_model
    from staircase.train.checkpoint import load_weights, save_checkpoint

    path = save_checkpoint(tmp_path / "t.pt", {"model": create_model("wrn_16_1", num_classes=10).state_dict(),
                                               "architecture": Architecture("wrn_16_1", {}, (3, 32, 32)).to_dict()})
    with pytest.raises(StaircaseError, match=r"fc.weight.*\(--num-classes: its classifier has other outputs\)$"):
        load_weights(create_model("wrn_16_1", num_classes=100), path, "wrn_16_1")
    with pytest.raises(StaircaseError, match=r"another model's checkpoint\?$"):  # a body that differs: no such hint
        load_weights(create_model("wrn_16_2", num_classes=100), path, "wrn_16_2")
