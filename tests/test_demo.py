from staircase.demo import run_demo
from staircase.spec import StudentSpec


def test_demo_writes_specs_and_reuses_them(tmp_path, capsys):
    assert run_demo("wrn_16_1", tmp_path) == 0
    specs = sorted((tmp_path / "students").glob("*.json"))
    assert [p.name for p in specs] == ["wrn_16_1-uniform30.json", "wrn_16_1-uniform50.json", "wrn_16_1-uniform70.json"]
    half = StudentSpec.load(tmp_path / "students" / "wrn_16_1-uniform50.json")
    assert set(half.widths.values()) >= {8, 16, 32}  # inner widths 16/32/64 halved, streams kept
    assert "wrote" in capsys.readouterr().out
    assert run_demo("wrn_16_1", tmp_path) == 0
    assert "reusing" in capsys.readouterr().out
