import json

import pytest
from helpers import one_line_error


def test_models_lists_the_zoo_as_json(run_cli):
    out = run_cli("models", "wrn_40_*", "--json", check=True)
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert set(rows) == {"wrn_40_1", "wrn_40_2"}
    assert rows["wrn_40_2"]["inner_slots"] == 18 and rows["wrn_40_2"]["input_shape"] == [3, 32, 32]


@pytest.mark.slow
def test_slots_table_and_json(run_cli):
    out = run_cli("slots", "resnet56", check=True)
    assert "layer1.0.conv1" in out.stdout and "27 inner (default prunable) slots of 30" in out.stdout
    rows = json.loads(run_cli("slots", "resnet56", "--all", "--json", check=True).stdout)
    assert len(rows) == 30 and sum(r["residual"] for r in rows) == 3


@pytest.mark.slow
def test_student_writes_a_spec_that_slots_reads_back(run_cli, tmp_path):
    (tmp_path / "w.json").write_text(json.dumps({"block1.layer.0.conv1": 9}))
    out = run_cli("student", "wrn_16_2", "--widths", "w.json", "--out", "s.json", check=True)
    assert "1 of 10 slots narrowed" in out.stdout
    rows = json.loads(run_cli("slots", "s.json", "--json", check=True).stdout)
    assert {r["name"]: r["width"] for r in rows}["block1.layer.0.conv1"] == 9


@pytest.mark.slow
def test_user_factory_model(run_cli):
    out = run_cli("slots", "user_nets:tiny_res_concat", "--input-shape", "3,16,16", "--all", check=True)
    assert "3 all slots of 3" in out.stdout


@pytest.mark.slow
def test_errors_are_one_line_without_traceback(run_cli, tmp_path):
    one_line_error(run_cli("slots", "wrn_40_2x"), "unknown model 'wrn_40_2x'", "did you mean")
    one_line_error(run_cli("slots", "wrn_41_2"), "WRN depth must be 6n+4")
    one_line_error(run_cli("slots", "user_nets:tiny_res_concat"), "--input-shape")
    one_line_error(run_cli("slots", "user_nets:not_a_module"), "not a torch.nn.Module")
    one_line_error(run_cli("slots", "no_such_pkg:f"), "cannot import 'no_such_pkg'")
    one_line_error(run_cli("slots", "missing.json"), "student spec missing.json does not exist")
    one_line_error(run_cli("slots", "wrn_16_1", "--input-shape", "3,a"), "input shape '3,a'")
    (tmp_path / "w.json").write_text(json.dumps({"block1.layer.0.conv1": 99}))
    one_line_error(run_cli("student", "wrn_16_1", "--widths", "w.json", "--out", "s.json"),
                    "slot 'block1.layer.0.conv1': width 99 is above the teacher's 16")
    assert not (tmp_path / "s.json").exists()


def test_debug_shows_the_traceback(run_cli):
    proc = run_cli("--debug", "slots", "wrn_40_2x")
    assert proc.returncode != 0 and "Traceback" in proc.stderr
