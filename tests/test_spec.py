import json

import pytest

from staircase import StudentSpec, count_params
from staircase.architecture import Architecture
from staircase.errors import SpecError
from staircase.modelref import resolve_model
from staircase.spec import Provenance
from staircase.widths import WidthsFile


@pytest.fixture
def spec_and_model():
    arch = Architecture("wrn_16_2", {"num_classes": 10}, (3, 32, 32))
    return StudentSpec.create(arch, {"block1.layer.0.conv1": 5, "block3.layer.1.conv1": 100}, "s",
                              Provenance(method="manual", predicted_ms=1.5))


def test_round_trip_rebuilds_the_same_architecture(spec_and_model, tmp_path):
    spec, model = spec_and_model
    path = spec.save(tmp_path / "s.json")
    loaded = StudentSpec.load(path)
    assert loaded.to_dict() == spec.to_dict()
    rebuilt = loaded.build()
    assert [tuple(p.shape) for p in rebuilt.parameters()] == [tuple(p.shape) for p in model.parameters()]
    assert count_params(rebuilt) == spec.params
    assert loaded.provenance.predicted_ms == 1.5
    assert loaded.widths["block2.layer.0.conv1"] == 64  # unnamed slots keep the teacher's width
    assert resolve_model(str(path)).spec.name == "s"


def _corrupt(spec, tmp_path, **changes):
    d = spec.to_dict()
    d.update(changes)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    return p


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"format": "other"}, "not a student spec"),
        ({"version": 99}, "newer than this staircase reads"),
        ({"params": "many"}, "'params' must be an integer"),
        ({"widths": {"nope": 3}}, "slot(s) the teacher does not have: ['nope']"),
        ({"widths": {"block1.layer.0.conv1": 0}}, "slot 'block1.layer.0.conv1' has width 0, outside 1..32"),
        ({"teacher": {"name": "wrn_16_2", "input_size": [3, 32]}}, "input_size"),
        ({"provenance": {"colour": "red"}}, "unknown provenance field"),
    ],
)
def test_malformed_specs_get_one_clear_error(spec_and_model, tmp_path, changes, message):
    path = _corrupt(spec_and_model[0], tmp_path, **changes)
    with pytest.raises(SpecError) as err:
        StudentSpec.load(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_spec_that_no_longer_matches_its_teacher(spec_and_model, tmp_path):
    spec = spec_and_model[0]
    d = spec.to_dict()
    d["teacher"]["name"] = "wrn_16_1"  # same slot names, half the widths
    with pytest.raises(SpecError, match="no longer has the slots"):
        StudentSpec.from_dict(d).build()
    d = spec.to_dict()
    d["params"] += 1
    with pytest.raises(SpecError, match="rebuilt student has"):
        StudentSpec.from_dict(d).build()


def test_truncated_and_missing_files(spec_and_model, tmp_path):
    p = tmp_path / "t.json"
    p.write_text(json.dumps(spec_and_model[0].to_dict())[:50])
    with pytest.raises(SpecError, match="not valid JSON.*truncated"):
        StudentSpec.load(p)
    with pytest.raises(SpecError, match="does not exist"):
        StudentSpec.load(tmp_path / "none.json")


def test_widths_files(tmp_path):
    p = tmp_path / "w.json"
    p.write_text(json.dumps({"widths": {"a": 3}, "other": 1}))
    assert WidthsFile.load(p).widths == {"a": 3}
    p.write_text(json.dumps({"a": "3"}))
    with pytest.raises(SpecError, match="'a' is '3', not an integer"):
        WidthsFile.load(p)


def test_a_widths_file_round_trips_and_refuses_a_newer_version(tmp_path):
    written = WidthsFile({"a": 3, "b": 5}, {"a": [0.5, 0.25, 0.125, 0.0625]}, ["a"], "fisher-pruned", "wrn_16_1",
                         {"target": "channels <= 8", "reached": True, "steps": 40, "seconds": 1.5})
    path = written.save(tmp_path / "w.json")
    assert WidthsFile.load(path) == written
    data = json.loads(path.read_text())
    assert data["format"] == "staircase-widths" and data["version"] == 2
    data["version"] = 3
    path.write_text(json.dumps(data))
    with pytest.raises(SpecError, match="has version 3.*upgrade staircase"):
        WidthsFile.load(path)
    del data["version"]  # written before the version was recorded: read as version 1
    path.write_text(json.dumps(data))
    assert WidthsFile.load(path).widths == {"a": 3, "b": 5}
