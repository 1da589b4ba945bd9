"""Datasets named by a ``--data`` spec: ``digits`` (built in), ``cifar10:PATH``,
``cifar100:PATH`` (the original python-batch format), both held in memory, and
``folder:PATH`` (ImageNet-style class folders, read file by file through torchvision). Images
are resized to the model's input; training images get the standard augmentation (digits
and CIFAR: pad-4 random crop, horizontal flip for CIFAR; folders: ``folder_transform``),
and everything is normalised with the dataset's channel statistics.
"""

from __future__ import annotations

import hashlib
import pickle
import tarfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import StaircaseError

__all__ = ["DATA_HELP", "DATA_KINDS", "DataBundle", "FolderImages", "TensorImages", "default_workers", "folder_transform",
           "load_data"]

DATA_KINDS = ("digits", "cifar10:PATH", "cifar100:PATH", "folder:PATH")
DATA_HELP = f"{', '.join(DATA_KINDS[:-1])} or {DATA_KINDS[-1]}"  # what --data takes
_CIFAR = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                 "cifar-100-python", ["train"], ["test"], b"fine_labels"),
}
_STATS = {"cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
          "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
          "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}


class TensorImages(Dataset):
    """Images held in memory as uint8 (N, C, H, W), resized, augmented and normalised per item."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, size: Sequence[int], mean, std,
                 augment: bool, flip: bool = True):
        self.images, self.labels = images, labels
        self.size = tuple(int(s) for s in size)
        c = self.size[0]
        self.mean = torch.tensor((list(mean) * c)[:c]).view(c, 1, 1)
        self.std = torch.tensor((list(std) * c)[:c]).view(c, 1, 1)
        self.augment, self.flip = augment, flip

    def subset(self, indices: torch.Tensor, augment: bool | None = None) -> TensorImages:
        """The images at ``indices``, prepared the same way (``augment`` overrides)."""
        return TensorImages(self.images[indices], self.labels[indices], self.size, self.mean.flatten().tolist(),
                            self.std.flatten().tolist(), self.augment if augment is None else augment, self.flip)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = self.images[i].float().div(255)
        c, h, w = self.size
        if x.shape[0] != c:  # grey to colour (or the reverse): repeat or average the channels
            x = x.expand(c, -1, -1) if x.shape[0] == 1 else x.mean(0, keepdim=True).expand(c, -1, -1)
        if x.shape[1:] != (h, w):
            x = F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        if self.augment:
            pad = max(1, round(4 * h / 32))
            x = F.pad(x, (pad, pad, pad, pad))
            # torch's generator, not numpy's: a run's seed and its saved RNG state cover augmentation too
            top, left = torch.randint(0, 2 * pad + 1, (2,)).tolist()
            x = x[:, top:top + h, left:left + w]
            if self.flip and torch.rand(()) < 0.5:
                x = x.flip(2)
        return (x - self.mean) / self.std, int(self.labels[i])


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
              augment: bool = True, download: bool = True) -> DataBundle:
    """The train and test sets named by ``spec`` (with ``val_split``, the test set is that
    share of the training set, held out)."""
    kind, _, path = spec.partition(":")
    if kind == "digits" and not path:
        bundle = _digits(input_size, augment, seed)
    elif kind in _CIFAR and path:
        bundle = _cifar(kind, Path(path), input_size, augment, download)
    elif kind == "folder" and path:
        bundle = _folder(Path(path), input_size, augment)
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


def _digits(size, augment, seed) -> DataBundle:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy((d.images / 16.0 * 255).round().astype(np.uint8))[:, None]
    labels = torch.from_numpy(d.target.astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(order))
    mean, std = (0.3,), (0.4,)
    # digits are not mirror-symmetric: crop, no flip
    train = TensorImages(images[order[:cut]], labels[order[:cut]], size, mean, std, augment, flip=False)
    test = TensorImages(images[order[cut:]], labels[order[cut:]], size, mean, std, False)
    return DataBundle("digits (scikit-learn, 8x8 upscaled)", train, test, 10)


def _cifar(kind: str, root: Path, size, augment, download) -> DataBundle:
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

    mean, std = _STATS[kind]
    (xtr, ytr), (xte, yte) = read(train_files), read(test_files)
    classes = 10 if kind == "cifar10" else 100
    return DataBundle(f"{kind} ({base})", TensorImages(xtr, ytr, size, mean, std, augment),
                      TensorImages(xte, yte, size, mean, std, False), classes)


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


def _folder(root: Path, size, augment) -> DataBundle:
    """Class folders (``train/`` and ``val/`` or ``test/``, or one folder split 90/10), read
    file by file as the loader asks (``FolderImages``)."""
    from .._compat import import_vision_package

    if not root.is_dir():
        raise StaircaseError(f"folder data {root} does not exist")
    try:
        folders = import_vision_package("torchvision.datasets")
    except ImportError:
        raise StaircaseError("folder data is read through torchvision: pip install 'staircase[vision]'") from None
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
    mean, std = _STATS["imagenet"]
    train = FolderImages(train_samples, size, mean, std, augment)
    if test_dir is None:
        return _hold_out(DataBundle(f"folder {root}", train, train, len(classes)), 0.1, 0)
    test_classes, test_samples = listed(test_dir)
    if test_classes != classes:
        raise StaircaseError(f"{test_dir} has classes {test_classes[:4]}..., {train_dir} has {classes[:4]}...: "
                             "both splits need the same class folders")
    return DataBundle(f"folder {root}", train, FolderImages(test_samples, size, mean, std, False), len(classes))


class FolderImages(Dataset):
    """Images read from their files when asked for (in the DataLoader's workers), with the
    standard recipes: at 64 px and more, random-resized crops and flips for training and a
    resize to size / 0.875 then a centre crop for evaluation; below, pad-and-crop and flips
    (CIFAR's) and a plain resize. Memory does not grow with the folder."""

    def __init__(self, samples: list[tuple[str, int]], size: Sequence[int], mean, std, augment: bool):
        self.samples, self.size, self.mean, self.std = samples, tuple(int(s) for s in size), mean, std
        self.augment = augment
        self._transform = None

    @property
    def transform(self):
        # built where it is used: a loader process started by spawn or forkserver imports
        # torchvision through import_vision_package then, never by unpickling a transform
        if self._transform is None:
            self._transform = folder_transform(self.size, self.mean, self.std, self.augment)
        return self._transform

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_transform": None}

    def subset(self, indices: torch.Tensor, augment: bool | None = None) -> FolderImages:
        return FolderImages([self.samples[int(i)] for i in indices], self.size, self.mean, self.std,
                            self.augment if augment is None else augment)

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


def folder_transform(size: Sequence[int], mean, std, augment: bool):
    """The torchvision transform of one image file (PIL) for a network of input ``size``."""
    from .._compat import import_vision_package

    T = import_vision_package("torchvision.transforms")
    c, h, w = size
    big = min(h, w) >= 64
    if augment and big:
        steps = [T.RandomResizedCrop((h, w), antialias=True), T.RandomHorizontalFlip()]
    elif augment:
        steps = [T.Resize((h, w), antialias=True), T.RandomCrop((h, w), padding=max(1, round(4 * h / 32))),
                 T.RandomHorizontalFlip()]
    elif big:
        steps = [T.Resize(round(min(h, w) / 0.875), antialias=True), T.CenterCrop((h, w))]
    else:
        steps = [T.Resize((h, w), antialias=True)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize((list(mean) * c)[:c], (list(std) * c)[:c])])
