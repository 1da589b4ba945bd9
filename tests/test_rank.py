"""`staircase rank`: every channel scored in one pass, written as a widths file design reads."""

import pytest
import torch

from staircase.architecture import Architecture
from staircase.cli import main
from staircase.design.inherit import channel_scores
from staircase.design.rank import rank_channels
from staircase.modelref import ResolvedModel
from staircase.models import create_model
from staircase.train.checkpoint import save_checkpoint
from staircase.widths import WidthsFile

NAMES = ["block1.layer.0.conv1", "block2.layer.0.conv1"]


def _teacher(seed=0):
    torch.manual_seed(seed)
    model = create_model("wrn_16_1", num_classes=10)
    return ResolvedModel(model, Architecture("wrn_16_1", {"num_classes": 10}, (3, 32, 32)))


def _batch(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_fisher_is_half_the_square_of_the_taylor_score_image_by_image():
    teacher = _teacher()
    one = [_batch(1)]  # one image: fisher = 1/2 s^2 and taylor = |s| for the same s per channel
    fisher = rank_channels(teacher, "fisher", NAMES, one)
    taylor = rank_channels(teacher, "taylor", NAMES, one)
    for name in NAMES:
        assert torch.allclose(torch.tensor(fisher[name]), 0.5 * torch.tensor(taylor[name]) ** 2, rtol=1e-6)
        assert max(taylor[name]) > 0
    # over several images the mean of the squares is not the square of the mean: scores accumulate per image
    two = [_batch(1, 1), _batch(1, 2)]
    both = rank_channels(teacher, "fisher", NAMES, [(torch.cat([a[0] for a in two]), torch.cat([a[1] for a in two]))])
    apart = rank_channels(teacher, "fisher", NAMES, two)
    assert all(torch.allclose(torch.tensor(both[n]), torch.tensor(apart[n]), rtol=1e-6) for n in NAMES)


def test_a_channel_that_passes_nothing_on_scores_zero_and_the_weights_stay():
    teacher = _teacher()
    bn = teacher.model.get_submodule("block1.layer.0.bn2")
    with torch.no_grad():
        bn.weight[2], bn.bias[2] = 0.0, 0.0  # channel 2's activation is 0 whatever comes in
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    scores = rank_channels(teacher, "taylor", NAMES, [_batch(8)])
    assert scores[NAMES[0]][2] == 0.0 and min(v for i, v in enumerate(scores[NAMES[0]]) if i != 2) > 0
    assert all(torch.equal(before[k], v) for k, v in teacher.model.state_dict().items())
    assert all(p.grad is None for p in teacher.model.parameters())


def test_rank_writes_a_widths_file_that_inheritance_reads_as_fisher(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    teacher = _teacher()
    save_checkpoint("t.pt", {"model": teacher.model.state_dict(), "architecture": teacher.architecture.to_dict()})
    assert main(["rank", "t.pt", "--data", "digits", "--batches", "2", "--batch-size", "16", "--out", "r.json"]) == 0
    ranked = WidthsFile.load("r.json")
    assert ranked.method == "fisher-ranked" and ranked.run["steps"] == 2 and ranked.removed == []
    assert ranked.widths == {n: len(v) for n, v in ranked.saliency.items()}
    scores, by = channel_scores(teacher.model, NAMES, (3, 32, 32), ranked)
    assert by == "fisher" and all(scores[n] == ranked.saliency[n] for n in NAMES)
    assert main(["rank", "t.pt", "--method", "l1", "--out", "l1.json"]) == 0  # no data needed
    capsys.readouterr()
    assert main(["rank", "t.pt", "--method", "taylor", "--out", "x.json"]) == 1
    assert "give --data" in capsys.readouterr().err


def test_rank_scores_on_the_training_images_without_the_validation_split(tmp_path, monkeypatch):
    import staircase.train.data as data

    monkeypatch.chdir(tmp_path)
    teacher = _teacher()
    save_checkpoint("t.pt", {"model": teacher.model.state_dict(), "architecture": teacher.architecture.to_dict()})
    asked, load = [], data.load_data
    monkeypatch.setattr(data, "load_data", lambda *a, **kw: asked.append(kw) or load(*a, **kw))
    assert main(["rank", "t.pt", "--data", "digits", "--val-split", "0.2", "--split-seed", "5", "--batches", "1",
                 "--batch-size", "8", "--out", "r.json"]) == 0
    assert [(kw["val_split"], kw["seed"]) for kw in asked] == [(0.2, 5)]


@pytest.mark.parametrize("method", ["l1", "l1-bn"])
def test_the_data_free_scores_are_the_filter_norms(method):
    teacher = _teacher()
    scores = rank_channels(teacher, method, NAMES)
    assert all(len(scores[n]) == teacher.model.get_submodule(n).out_channels for n in NAMES)
