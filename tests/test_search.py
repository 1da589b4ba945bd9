"""The schedule search: a real Optuna study on tiny data (prune, measure, retrain), resumed,
refused when mixed, scaled out to worker processes and a local Ray instance."""

import json

import pytest

from staircase.errors import StaircaseError
from staircase.search import SearchSettings, hopeless, pareto_front, run_search
from staircase.train.trainer import TrainConfig, train

pytest.importorskip("optuna")

SCHEDULE = """
model: resnet20
pruners:
  first:
    class: L1RankedStructureParameterPruner
    group_type: Filters
    desired_sparsity: 0.5
    search: [0.0, 0.8]
    weights: [module.layer1.0.conv1.weight, module.layer1.1.conv1.weight]
  second:
    class: L1RankedStructureParameterPruner
    group_type: Filters
    desired_sparsity: 0.25
    search: [0.0, 0.8]
    weights: [module.layer2.1.conv1.weight]
retrain:
  epochs: 2
  lr: 0.01
  batch_size: 64
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    config = TrainConfig(model="resnet20", data="digits", out=str(root / "net"), epochs=1, batch_size=64,
                         train_images=128, threads=2, progress=False)
    train(config, log=lambda m: None)
    schedule = root / "schedule.yaml"
    schedule.write_text(SCHEDULE)
    return root, schedule


def _settings(root, schedule, **kw):
    return SearchSettings(**{"schedule": str(schedule), "checkpoint": str(root / "net" / "last.pt"), "data": "digits",
                             "backend": "torch", "threads": 2, "timing": "quick", "train_images": 128, "trials": 3,
                             **kw})


@pytest.mark.slow
def test_search_finds_a_front_starting_from_the_schedule_and_resumes(trained, tmp_path):
    root, schedule = trained
    out = tmp_path / "study"
    summary = run_search(_settings(root, schedule, out=str(out)), log=lambda m: None)
    assert summary["trials"] == 3 and summary["complete"] + summary["stopped_early"] == 3
    everything = json.loads((out / "front.json").read_text())["all"]
    first = min(everything, key=lambda r: r["number"])
    assert first["sparsities"] == {"first": 0.5, "second": 0.25}  # the off-the-shelf point comes first
    assert summary["baseline"]["number"] == 0 and (out / "front.png").exists() and (out / "study.db").exists()
    for r in everything:
        assert r["latency_ms"] > 0 and r["epochs_run"] in (1, 2)
        # the reported top-1 is the last epoch's test accuracy of the retrained trial
        assert r["top1"] == r["curve"][-1] and len(r["curve"]) == r["epochs_run"]
        assert r["widths"]["layer1.0.conv1"] == max(1, round((1 - r["sparsities"]["first"]) * 16))
        assert (tmp_path / "study" / f"trial-{r['number']:04d}" / "retrain" / "last.pt").exists()
    complete = [r for r in everything if r["state"] == "COMPLETE"]
    assert [p["number"] for p in summary["front"]] == [p["number"] for p in pareto_front(complete)]
    again = run_search(_settings(root, schedule, out=str(out), trials=4), log=lambda m: None)
    assert again["trials"] == 4  # three kept, one more run
    numbers = sorted(r["number"] for r in json.loads((out / "front.json").read_text())["all"])
    assert numbers == [0, 1, 2, 3]


@pytest.mark.slow
def test_a_trial_that_builds_a_network_already_trained_reuses_its_result(trained, tmp_path):
    root, _ = trained
    narrow = tmp_path / "narrow.yaml"  # every sparsity in these bounds keeps the same channels
    narrow.write_text(SCHEDULE.replace("search: [0.0, 0.8]\n    weights: [module.layer1",
                                       "search: [0.49, 0.51]\n    weights: [module.layer1")
                      .replace("search: [0.0, 0.8]\n    weights: [module.layer2", "search: [0.24, 0.26]\n    "
                               "weights: [module.layer2"))
    out = tmp_path / "study"
    summary = run_search(_settings(root, narrow, out=str(out)), log=lambda m: None)
    everything = sorted(json.loads((out / "front.json").read_text())["all"], key=lambda r: r["number"])
    assert summary["trials"] == 3 and summary["same_network_as_earlier"] == 2
    assert [r.get("duplicate_of") for r in everything] == [None, 0, 0]
    assert {r["top1"] for r in everything} == {everything[0]["top1"]} and len(summary["front"]) == 1
    assert not (out / "trial-0001").exists()  # nothing trained for the copies


@pytest.mark.slow
def test_a_study_refuses_another_schedule_and_bad_input_is_named(trained, tmp_path):
    root, schedule = trained
    out = tmp_path / "study"
    run_search(_settings(root, schedule, out=str(out), trials=1), log=lambda m: None)
    other = tmp_path / "other.yaml"
    other.write_text(SCHEDULE.replace("layer2.1.conv1", "layer2.2.conv1"))
    with pytest.raises(StaircaseError, match="made for another search \\(schedule"):
        run_search(_settings(root, other, out=str(out), trials=1), log=lambda m: None)
    missing = tmp_path / "missing.yaml"
    missing.write_text(SCHEDULE.replace("layer2.1.conv1", "layer2.7.conv1"))
    with pytest.raises(StaircaseError, match="no convolution weight module.layer2.7.conv1.weight"):
        run_search(_settings(root, missing, out=str(tmp_path / "m")), log=lambda m: None)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(SCHEDULE.replace("model: resnet20", "model: resnet56"))
    with pytest.raises(StaircaseError, match="is for resnet56 but .* holds a resnet20"):
        run_search(_settings(root, wrong, out=str(tmp_path / "w")), log=lambda m: None)
    with pytest.raises(StaircaseError, match="cannot reach the Ray cluster at 'ray://127.0.0.1:1'"):
        run_search(_settings(root, schedule, out=str(tmp_path / "r"), ray_address="ray://127.0.0.1:1"),
                   log=lambda m: None)


@pytest.mark.slow
def test_worker_processes_and_local_ray_give_the_same_kind_of_study(trained, tmp_path):
    pytest.importorskip("ray")
    root, schedule = trained
    for kw, trials in (({"workers": 2}, 2), ({"ray_address": "local"}, 1)):  # a Ray worker starts slowly
        out = tmp_path / next(iter(kw))
        summary = run_search(_settings(root, schedule, out=str(out), trials=trials, epochs=1, **kw),
                             log=lambda m: None)
        assert summary["trials"] == trials and summary["complete"] == trials, kw
        assert {r["number"] for r in json.loads((out / "front.json").read_text())["all"]} == set(range(trials))


def test_hopeless_compares_with_faster_finished_trials_at_the_same_epoch():
    finished = [{"latency_ms": 1.0, "curve": [50.0, 60.0, 70.0], "top1": 70.0}]
    assert hopeless(1.2, 2, 55.0, finished, margin=1.0)  # slower and 5 points behind at epoch 2
    assert not hopeless(0.8, 2, 55.0, finished, margin=1.0)  # faster: not dominated whatever its accuracy
    assert not hopeless(1.2, 2, 59.5, finished, margin=1.0)  # within the margin
    assert not hopeless(1.2, 4, 10.0, finished, margin=1.0)  # no reference at that epoch
    assert not hopeless(1.2, 2, 55.0, [{"latency_ms": 1.0, "curve": [50.0, 60.0], "top1": 40.0}], margin=1.0)


def test_pareto_front_keeps_the_undominated_points():
    pts = [{"latency_ms": 1.0, "top1": 50.0}, {"latency_ms": 2.0, "top1": 60.0}, {"latency_ms": 2.5, "top1": 55.0},
           {"latency_ms": 0.5, "top1": 40.0}, {"latency_ms": 1.0, "top1": 45.0}]
    assert [(p["latency_ms"], p["top1"]) for p in pareto_front(pts)] == [(0.5, 40.0), (1.0, 50.0), (2.0, 60.0)]
