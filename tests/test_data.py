import json
import pickle

import numpy as np
import pytest
import torch

from staircase.errors import StaircaseError
from staircase.train.data import load_data


def test_digits_are_upscaled_to_the_model_input():
    data = load_data("digits", (3, 32, 32))
    x, y = data.train[0]
    assert x.shape == (3, 32, 32) and 0 <= y < 10 and data.num_classes == 10
    assert len(data.train) + len(data.test) == 1797
    split = load_data("digits", (1, 16, 16), val_split=0.25)
    assert len(split.test) == int(0.25 * len(data.train)) and split.test[0][0].shape == (1, 16, 16)


def _write_cifar(root, n=6):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), b"labels": list(range(n))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return folder


def test_cifar_python_batches_are_read(tmp_path):
    _write_cifar(tmp_path)
    data = load_data(f"cifar10:{tmp_path}", (3, 32, 32), download=False)
    assert len(data.train) == 30 and len(data.test) == 6
    x, y = data.test[2]
    assert x.shape == (3, 32, 32) and y == 2


def test_unreadable_data_is_named(tmp_path):
    folder = _write_cifar(tmp_path)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(StaircaseError, match="cannot read .*data_batch_3"):
        load_data(f"cifar10:{tmp_path}", (3, 32, 32), download=False)
    with pytest.raises(StaircaseError, match="holds no cifar-10-batches-py"):
        load_data(f"cifar10:{tmp_path / 'empty'}", (3, 32, 32), download=False)
    with pytest.raises(StaircaseError, match="is not one of: digits"):
        load_data("mnist", (1, 28, 28))


def test_class_folders(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((20, 24, 3), 40 * i, dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    data = load_data(f"folder:{tmp_path}", (3, 16, 16))
    assert data.num_classes == 2 and len(data.train) == 4 and len(data.test) == 4
    assert data.test[3][0].shape == (3, 16, 16) and data.test[3][1] == 1
    assert isinstance(data.train[0][0], torch.Tensor)


def _image_folder(root, sizes=(100, 80), per_class=3):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (*sizes, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")


def test_image_folders_are_read_file_by_file_with_the_standard_recipes(tmp_path):
    import pickle

    from staircase.train.data import FolderImages, default_workers

    _image_folder(tmp_path)
    data = load_data(f"folder:{tmp_path}", (3, 64, 64))
    assert isinstance(data.train, FolderImages) and len(pickle.dumps(data.train)) < 10_000  # paths, not pixels
    assert default_workers(data.train) >= 1 and default_workers(load_data("digits", (1, 8, 8)).train) == 0
    torch.manual_seed(0)
    crops = [data.train[0][0] for _ in range(2)]
    assert crops[0].shape == (3, 64, 64) and not torch.equal(*crops)  # random-resized crops
    assert torch.equal(data.test[0][0], data.test[0][0]) and data.test[0][0].shape == (3, 64, 64)  # centre crop
    (tmp_path / "val" / "dog" / "0.png").write_bytes(b"not a png")
    with pytest.raises(StaircaseError, match=r"image .*val/dog/0.png cannot be read"):
        load_data(f"folder:{tmp_path}", (3, 64, 64)).test[3]


def test_evaluate_decodes_a_folder_in_loader_processes(tmp_path, run_cli):
    """In a process of its own: forking loader workers from one that has loaded the runtimes
    (as this test process has) is not what a user's command does."""
    from staircase.architecture import Architecture
    from staircase.models import create_model
    from staircase.train.checkpoint import save_checkpoint

    _image_folder(tmp_path / "images", per_class=5)
    arch = Architecture("wrn_16_1", {"num_classes": 2}, (3, 64, 64))
    save_checkpoint(tmp_path / "t.pt", {"model": create_model("wrn_16_1", num_classes=2).state_dict(),
                                        "architecture": arch.to_dict()})
    r = run_cli("evaluate", "t.pt", "--data", "folder:images", "--workers", "2", "--batch-size", "4", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["images"] == 10


def test_loader_processes_started_by_spawn_read_a_folder(tmp_path):
    """spawn (macOS's and Windows' start method) unpickles the dataset in a fresh process:
    it must import torchvision the way staircase does, not by unpickling a transform."""
    import subprocess
    import sys

    _image_folder(tmp_path / "images")
    script = tmp_path / "load.py"
    script.write_text(
        "import torch\n"
        "from staircase.train.data import load_data\n"
        "if __name__ == '__main__':\n"
        f"    data = load_data('folder:{tmp_path / 'images'}', (3, 64, 64))\n"
        "    loader = torch.utils.data.DataLoader(data.train, batch_size=3, num_workers=1,\n"
        "                                         multiprocessing_context='spawn')\n"
        "    print(sum(len(x) for x, _ in loader))\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split()[-1] == "6", r.stderr[-1500:]


def test_cifar_takes_torchvisions_recipes_at_its_size_and_above(tmp_path):
    from staircase._compat import import_vision_package

    T = import_vision_package("torchvision.transforms.v2")
    _write_cifar(tmp_path)
    mean, std = torch.tensor([0.4914, 0.4822, 0.4465]), torch.tensor([0.2470, 0.2435, 0.2616])
    data = load_data(f"cifar10:{tmp_path}", (3, 64, 64), download=False)
    raw = data.test.images[1]
    expected = T.CenterCrop(64)(T.Resize(73, antialias=True)(raw)).float().div(255)  # 64 / 0.875, then the centre
    assert torch.allclose(data.test[1][0], (expected - mean[:, None, None]) / std[:, None, None], atol=1e-5)
    small = load_data(f"cifar10:{tmp_path}", (3, 32, 32), download=False)
    assert torch.allclose(small.test[1][0], (raw.float().div(255) - mean[:, None, None]) / std[:, None, None],
                          atol=1e-5)
    torch.manual_seed(0)
    crops = [small.train[1][0] for _ in range(4)]  # pad-4 random crops and flips of the same image
    assert all(c.shape == (3, 32, 32) for c in crops) and not all(torch.equal(crops[0], c) for c in crops[1:])


def test_a_timm_model_brings_its_normalisation_and_transforms(tmp_path):
    from staircase.architecture import Architecture
    from staircase.errors import SpecError
    from staircase.train.data import timm_transform

    arch = Architecture("timm.models:resnet18", {"num_classes": 2}, (3, 64, 64))
    arch.build()
    pre = arch.preprocessing
    assert pre is not None and pre.timm and pre.interpolation == "bicubic" and pre.crop_pct == 0.95
    again = Architecture.from_dict(json.loads(json.dumps(arch.to_dict())), "checkpoint")
    assert again.preprocessing == pre
    assert Architecture("wrn_16_1", {}, (3, 32, 32)).preprocessing is None  # the zoo declares none
    with pytest.raises(SpecError, match="checkpoint t.pt: 'preprocessing'"):
        Architecture.from_dict({**arch.to_dict(), "preprocessing": {"mean": [0.5], "std": [0.0]}}, "checkpoint t.pt")

    digits, own = load_data("digits", (3, 16, 16), augment=False, preprocessing=pre), load_data("digits", (3, 16, 16),
                                                                                             augment=False)
    mean, std = torch.tensor(pre.mean)[:, None, None], torch.tensor(pre.std)[:, None, None]
    assert torch.allclose(digits.test[0][0] * std + mean, own.test[0][0] * 0.4 + 0.3, atol=1e-5)  # same pixels

    _image_folder(tmp_path)
    folder = load_data(f"folder:{tmp_path}", (3, 64, 64), preprocessing=pre)
    assert folder.train.recipe is timm_transform and folder.test[0][0].shape == (3, 64, 64)
    assert "Bicubic" in repr(folder.test.transform) or "bicubic" in repr(folder.test.transform)
