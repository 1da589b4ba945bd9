"""Datasets named by a ``--data`` spec: ``digits`` (built in), ``cifar10:PATH``,
``cifar100:PATH`` (the original python-batch format), both held in memory, and
``folder:PATH`` (ImageNet-style class folders, read file by file through torchvision).
Each image is transformed when the loader asks for it: digits by a plain-torch recipe
(``digit_transform``), CIFAR and image folders by torchvision's standard ones
(``image_transform``), a timm model's image files by timm's (``timm_transform``). The
normalisation is the network's own where it declares one (``Preprocessing``), else the
dataset's channel statistics.
"""

from __future__ import annotations

import hashlib
import pickle
import tarfile
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import StaircaseError, require
from ..preprocessing import Preprocessing
from ..settings import option

__all__ = ["DATA_HELP", "DATA_KINDS", "DataBundle", "FolderImages", "HeldOutSettings", "TensorImages", "default_workers", "digit_transform",
           "image_transform", "load_data", "timm_transform"]

DATA_KINDS = ("digits", "cifar10:PATH", "cifar100:PATH", "folder:PATH")
DATA_HELP = f"{', '.join(DATA_KINDS[:-1])} or {DATA_KINDS[-1]}"  # what --data takes
_CIFAR = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                 "cifar-100-python", ["train"], ["test"], b"fine_labels"),
}
_STATS = {"digits": Preprocessing((0.3,), (0.4,)),  # each dataset's own, for networks that declare none
          "cifar10": Preprocessing((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
          "cifar100": Preprocessing((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
          "imagenet": Preprocessing((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}


@dataclass(kw_only=True)
class HeldOutSettings:
    """The validation split a job keeps its hands off: the share of the training images the
    network was trained without, chosen as training chose it (``TrainConfig.split_seed``)."""

    val_split: float = option(0.0, help="leave out this share of the training images (the validation split the "
                                        "network was trained without)")
    split_seed: int = option(0, help="which images --val-split leaves out (as in training)")


class _Images(Dataset):
    """Images prepared for a network of input ``size``: the transform (``recipe(size, pre,
    augment)``) is built where it is used, so that a loader process started by spawn or
    forkserver imports torchvision through ``import_vision_package``, never by unpickling one."""

    def __init__(self, size: Sequence[int], pre: Preprocessing, augment: bool, recipe: Callable):
        self.size, self.pre, self.augment, self.recipe = tuple(int(s) for s in size), pre, augment, recipe
        self._transform = None

    @property
    def transform(self):
        if self._transform is None:
            self._transform = self.recipe(self.size, self.pre, self.augment)
        return self._transform

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_transform": None}


class TensorImages(_Images):
    """Images held in memory as uint8 (N, C, H, W)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, size: Sequence[int], pre: Preprocessing,
                 augment: bool, recipe: Callable):
        super().__init__(size, pre, augment, recipe)
        self.images, self.labels = images, labels

    def subset(self, indices: torch.Tensor, augment: bool | None = None) -> TensorImages:
        """The images at ``indices``, prepared the same way (``augment`` overrides)."""
        return TensorImages(self.images[indices], self.labels[indices], self.size, self.pre,
                            self.augment if augment is None else augment, self.recipe)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x, c = self.images[i], self.size[0]
        if x.shape[0] != c:  # grey to colour (or the reverse): repeat or average the channels
            x = x.expand(c, -1, -1) if x.shape[0] == 1 else x.float().mean(0, keepdim=True).round().byte().expand(c, -1, -1)
        return self.transform(x), int(self.labels[i])


def digit_transform(size: Sequence[int], pre: Preprocessing, augment: bool):
    """The built-in digits' recipe in plain torch (no torchvision needed): a bilinear resize to
    the input size; for training, a random crop of the image padded by 4/32 of its side (digits
    are not mirror-symmetric: no flip). Random numbers come from torch's generator: a run's
    seed and its saved RNG state cover augmentation too."""
    c, h, w = size
    mean, std = _per_channel(pre.mean, c).view(c, 1, 1), _per_channel(pre.std, c).view(c, 1, 1)
    pad = max(1, round(4 * h / 32))

    def transform(x: torch.Tensor) -> torch.Tensor:
        x = x.float().div(255)
        if x.shape[1:] != (h, w):
            x = F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        if augment:
            x = F.pad(x, (pad, pad, pad, pad))
            top, left = torch.randint(0, 2 * pad + 1, (2,)).tolist()
            x = x[:, top:top + h, left:left + w]
        return (x - mean) / std

    return transform


def image_transform(size: Sequence[int], pre: Preprocessing, augment: bool):
    """The standard recipes through torchvision (an image file or a uint8 tensor in; a
    normalised float tensor out). Training: at 64 px and more, a random-resized crop and a
    flip; below, CIFAR's: a resize, a random crop of the image padded by 4/32 of its side, a
    flip. Evaluation: at 64 px and more, a resize to size / crop_pct (0.875 unless the network
    declares its own) then the centre crop; below, a plain resize. timm models take timm's own
    transform for image files (``timm_transform``)."""
    from .._compat import import_vision_package

    T = import_vision_package("torchvision.transforms.v2")
    c, h, w = size
    mode = T.InterpolationMode(pre.interpolation)
    big = min(h, w) >= 64
    if augment and big:
        steps = [T.RandomResizedCrop((h, w), interpolation=mode, antialias=True), T.RandomHorizontalFlip()]
    elif augment:
        steps = [T.Resize((h, w), interpolation=mode, antialias=True),
                 T.RandomCrop((h, w), padding=max(1, round(4 * h / 32))), T.RandomHorizontalFlip()]
    elif big:
        steps = [T.Resize(round(min(h, w) / pre.crop_pct), interpolation=mode, antialias=True), T.CenterCrop((h, w))]
    else:
        steps = [T.Resize((h, w), interpolation=mode, antialias=True)]
    return T.Compose([T.ToImage(), *steps, T.ToDtype(torch.float32, scale=True),
                      T.Normalize(_per_channel(pre.mean, c).tolist(), _per_channel(pre.std, c).tolist())])


def timm_transform(size: Sequence[int], pre: Preprocessing, augment: bool):
    """timm's ``create_transform`` for a timm model's image files, with its declared mean,
    std, crop share and resize filter at this input size (for training, timm's defaults:
    random-resized crop, flip, colour jitter 0.4)."""
    from .._compat import import_vision_package

    timm_data = import_vision_package("timm.data")
    return timm_data.create_transform(input_size=tuple(size), is_training=augment, mean=pre.mean, std=pre.std,
                                      crop_pct=pre.crop_pct, interpolation=pre.interpolation)


def _per_channel(values: Sequence[float], channels: int) -> torch.Tensor:
    """``values`` for ``channels`` channels: repeated when one is given for all, averaged for a
    grey network fed statistics of colour images."""
    values = list(values)
    if len(values) == channels:
        return torch.tensor(values)
    if channels == 1:
        return torch.tensor([sum(values) / len(values)])
    return torch.tensor((values * channels)[:channels])


@dataclass
class DataBundle:
    name: str
    train: Dataset
    test: Dataset
    num_classes: int


def default_workers(data: Dataset) -> int:
    """Loader processes when none are asked for: image files are decoded as they are read
    (2 processes, at most the cores), data in memory needs none."""
    import os

    return min(2, os.cpu_count() or 1) if isinstance(data, FolderImages) else 0


def load_data(spec: str, input_size: Sequence[int], val_split: float = 0.0, seed: int = 0,
              augment: bool = True, download: bool = True, preprocessing: Preprocessing | None = None) -> DataBundle:
    """The train and test sets named by ``spec`` (with ``val_split``, the test set is that
    share of the training set, held out), normalised as ``preprocessing`` says (the
    network's ``Architecture.preprocessing``), else with the dataset's own statistics."""
    kind, _, path = spec.partition(":")
    if kind == "digits" and not path:
        bundle = _digits(input_size, preprocessing or _STATS["digits"], augment, seed)
    elif kind in _CIFAR and path:
        bundle = _cifar(kind, Path(path), input_size, preprocessing or _STATS[kind], augment, download)
    elif kind == "folder" and path:
        bundle = _folder(Path(path), input_size, preprocessing or _STATS["imagenet"], augment)
    else:
        raise StaircaseError(f"--data {spec!r} is not one of: {', '.join(DATA_KINDS)}")
    if val_split:
        bundle = _hold_out(bundle, val_split, seed)
    return bundle


def _hold_out(bundle: DataBundle, share: float, seed: int) -> DataBundle:
    if not 0 < share < 1:
        raise StaircaseError(f"--val-split {share} must be between 0 and 1")
    train = bundle.train
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    cut = int(len(order) * share)
    val, rest = train.subset(order[:cut], augment=False), train.subset(order[cut:])
    return DataBundle(bundle.name + f" (validation {share:.0%} of train)", rest, val, bundle.num_classes)


def _digits(size, pre: Preprocessing, augment, seed) -> DataBundle:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy((d.images / 16.0 * 255).round().astype(np.uint8))[:, None]
    labels = torch.from_numpy(d.target.astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(order))
    train = TensorImages(images[order[:cut]], labels[order[:cut]], size, pre, augment, digit_transform)
    test = TensorImages(images[order[cut:]], labels[order[cut:]], size, pre, False, digit_transform)
    return DataBundle("digits (scikit-learn, 8x8 upscaled)", train, test, 10)


def _cifar(kind: str, root: Path, size, pre: Preprocessing, augment, download) -> DataBundle:
    """The python batches, read here rather than by torchvision's CIFAR classes, which refuse
    any copy whose checksums differ from the published archive's (a subset, say); the images
    then take the same torchvision transforms as image folders (``image_transform``)."""
    url, md5, folder, train_files, test_files, label_key = _CIFAR[kind]
    base = root / folder if (root / folder).is_dir() else root
    if not all((base / f).exists() for f in train_files + test_files):
        if not download:
            raise StaircaseError(f"{kind}: {root} holds no {folder} batches ({', '.join(train_files + test_files)})")
        base = _download(kind, url, md5, root, folder)

    def read(files):
        xs, ys = [], []
        for f in files:
            try:
                with open(base / f, "rb") as fh:
                    batch = pickle.load(fh, encoding="bytes")
                xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                ys.append(np.asarray(batch[label_key], dtype=np.int64))
            except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError) as exc:
                raise StaircaseError(f"{kind}: cannot read {base / f} ({type(exc).__name__}); "
                                     "is it the python-batch format, complete?") from None
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    require("torchvision", f"{kind} data (transformed through torchvision)", "vision")
    (xtr, ytr), (xte, yte) = read(train_files), read(test_files)
    classes = 10 if kind == "cifar10" else 100
    return DataBundle(f"{kind} ({base})", TensorImages(xtr, ytr, size, pre, augment, image_transform),
                      TensorImages(xte, yte, size, pre, False, image_transform), classes)


def _download(kind: str, url: str, md5: str, root: Path, folder: str) -> Path:
    """Download and extract the archive into ``root``; ``root`` is created only once the
    download succeeded (a mistyped path is not left behind as an empty folder)."""
    import shutil
    import tempfile

    archive = root / url.rsplit("/", 1)[1]
    if not archive.exists():
        with tempfile.TemporaryDirectory() as tmp:
            partial = Path(tmp) / archive.name
            try:
                with urllib.request.urlopen(url, timeout=30) as r, open(partial, "wb") as f:
                    while chunk := r.read(1 << 20):
                        f.write(chunk)
            except OSError as exc:
                raise StaircaseError(f"{kind} is not in {root} and cannot be downloaded ({exc}); put the extracted "
                                     f"{folder}/ folder there, or download {url} by hand") from None
            root.mkdir(parents=True, exist_ok=True)
            shutil.move(partial, archive)
    digest = hashlib.md5(archive.read_bytes()).hexdigest()  # noqa: S324 - the published checksum is MD5
    if digest != md5:
        raise StaircaseError(f"{archive} has MD5 {digest}, expected {md5}: delete it and try again")
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return root / folder


def _folder(root: Path, size, pre: Preprocessing, augment) -> DataBundle:
    """Class folders (``train/`` and ``val/`` or ``test/``, or one folder split 90/10), read
    file by file as the loader asks (``FolderImages``)."""
    if not root.is_dir():
        raise StaircaseError(f"folder data {root} does not exist")
    folders = require("torchvision.datasets", "folder data (read through torchvision)", "vision")
    train_dir = root / "train" if (root / "train").is_dir() else root
    test_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)

    def listed(split: Path):
        try:
            found = folders.ImageFolder(str(split))
        except (FileNotFoundError, RuntimeError) as exc:  # no class folders, or none holding an image
            raise StaircaseError(f"{split} holds no images in class folders ({split}/<class>/<image>): "
                                 f"{str(exc).splitlines()[0][:120]}") from None
        return found.classes, [(path, label) for path, label in found.samples]

    classes, train_samples = listed(train_dir)
    recipe = timm_transform if pre.timm else image_transform
    train = FolderImages(train_samples, size, pre, augment, recipe)
    if test_dir is None:
        return _hold_out(DataBundle(f"folder {root}", train, train, len(classes)), 0.1, 0)
    test_classes, test_samples = listed(test_dir)
    if test_classes != classes:
        raise StaircaseError(f"{test_dir} has classes {test_classes[:4]}..., {train_dir} has {classes[:4]}...: "
                             "both splits need the same class folders")
    return DataBundle(f"folder {root}", train, FolderImages(test_samples, size, pre, False, recipe), len(classes))


class FolderImages(_Images):
    """Images read from their files when asked for (in the DataLoader's workers): memory does
    not grow with the folder."""

    def __init__(self, samples: list[tuple[str, int]], size: Sequence[int], pre: Preprocessing, augment: bool,
                 recipe: Callable):
        super().__init__(size, pre, augment, recipe)
        self.samples = samples

    def subset(self, indices: torch.Tensor, augment: bool | None = None) -> FolderImages:
        return FolderImages([self.samples[int(i)] for i in indices], self.size, self.pre,
                            self.augment if augment is None else augment, self.recipe)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from PIL import Image

        path, label = self.samples[i]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB" if self.size[0] == 3 else "L")
        except OSError as exc:
            raise StaircaseError(f"image {path} cannot be read ({exc})") from None
        return self.transform(img), label
