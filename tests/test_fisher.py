import json
from collections import Counter

import pytest
import torch
from torch import nn

from staircase.design.fisher import FisherPruner, FisherSchedule, fisher_prune


class Tiny(nn.Module):
    input_size = (3, 8, 8)

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 5, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(5)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        self.a1 = self.bn1(self.conv1(x))
        x = torch.relu(self.a1)
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def test_fisher_saliency_matches_a_hand_computation():
    torch.manual_seed(0)
    model = Tiny()
    pruner = FisherPruner(model, model.input_size, ["conv1"])
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    hand = torch.zeros(6, dtype=torch.float64)
    for _ in range(2):  # two steps accumulate
        model.zero_grad()
        out = model(x)
        model.a1.retain_grad()
        nn.functional.cross_entropy(out, y).backward()
        a, g = model.a1.detach().double(), model.a1.grad.double()
        hand += 0.5 * (a * g).sum((2, 3)).pow(2).mean(0)
        pruner.step_done()
    assert torch.allclose(pruner.acc["conv1"], hand, rtol=1e-5, atol=1e-12)
    assert torch.allclose(pruner.saliency()["conv1"], hand / 2, rtol=1e-5, atol=1e-12)
    least = int(hand.argmin())
    kept_before = model.conv1.weight.detach().clone()
    removed = pruner.prune(1)
    assert removed[0][0] == "conv1" and removed[0][1] == pytest.approx(float(hand[least] / 2))
    assert model.conv1.out_channels == 5 and model.conv2.in_channels == 5 and model.bn1.num_features == 5
    keep = [i for i in range(6) if i != least]
    assert torch.equal(model.conv1.weight, kept_before[keep])  # the others are kept, for real
    assert pruner.acc["conv1"].shape == (5,) and pruner.steps == 0


def test_fisher_prune_stops_at_the_target_and_resumes_from_its_checkpoint(tmp_path):
    torch.manual_seed(0)
    batches = [(torch.randn(8, 3, 8, 8), torch.randint(0, 3, (8,))) for _ in range(3)]
    schedule = FisherSchedule(prune_every=2, per_prune=2)

    def stop(widths, _model):
        return sum(widths.values()) <= 5

    ckpt = tmp_path / "job.ckpt"
    model = Tiny()
    first, state = fisher_prune(model, model.input_size, batches, lambda w, m: sum(w.values()) <= 8, schedule,
                                ckpt, log=lambda m: None, names=["conv1", "conv2"])
    assert sum(first.widths().values()) == 7 and ckpt.exists()  # 11 -> 9 -> 7
    again = Tiny()  # a fresh teacher: the checkpoint shrinks it and loads the pruned weights
    pruner, state2 = fisher_prune(again, again.input_size, batches, stop, schedule, ckpt, log=lambda m: None,
                                  names=["conv1", "conv2"])
    assert state2.step > state.step and len(state2.removed) == 6
    assert state2.removed[:4] == state.removed
    assert sum(pruner.widths().values()) == 5


@pytest.mark.slow
def test_prune_command_fisher_on_digits(tmp_path, run_cli):
    out = tmp_path / "w.json"
    r = run_cli("prune", "wrn_16_1", "--data", "digits", "--target-channels", "160", "--max-steps", "200",
                "--batch-size", "16", "--threads", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["format"] == "staircase-widths" and doc["reached"] and sum(doc["widths"].values()) <= 160
    full = [16, 16, 32, 32, 64, 64]  # the inner slots of WRN-16-1
    assert [len(doc["saliency"][n]) for n in doc["widths"]] == full  # kept and removed channels alike
    assert len(doc["removed"]) == sum(full) - sum(doc["widths"].values())
    assert doc["steps"] == 10 * len(doc["removed"]) // 4  # the fast schedule: 4 channels every 10 steps


@pytest.mark.slow
def test_prune_command_l1_to_parameters(tmp_path, run_cli):
    out = tmp_path / "w.json"
    r = run_cli("prune", "wrn_16_1", "--method", "l1", "--target-params", "100000", "--out", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["reached"] and doc["method"] == "l1-pruned"
    removed = Counter(doc["removed"])  # the recorded order replays to the widths
    assert all(len(doc["saliency"][n]) - w == removed[n] for n, w in doc["widths"].items())
    r = run_cli("prune", "wrn_16_1", "--method", "l1", "--target-params", "1e5", "--target-channels", "3",
                "--out", str(out))
    assert r.returncode == 1 and "exactly one of" in r.stderr
    r = run_cli("prune", "wrn_16_1", "--data", "cifar10:/nonexistent", "--target-channels", "10", "--out", str(out))
    assert r.returncode == 1 and "cifar10" in r.stderr
