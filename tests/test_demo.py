from staircase.demo import run_demo
from staircase.spec import StudentSpec


def test_demo_writes_specs_and_reuses_them(tmp_path, capsys):
    assert run_demo("wrn_16_1", tmp_path, grid=8, timing="quick") == 0
    specs = sorted(p.name for p in (tmp_path / "students").glob("*.json"))
    assert specs == [f"wrn_16_1-{tag}{s}.json" for tag in ("snapped", "uniform") for s in (30, 50, 70)]
    assert (tmp_path / "plots" / "overview.png").exists()
    snapped = StudentSpec.load(tmp_path / "students" / "wrn_16_1-snapped50.json")
    assert snapped.provenance.predicted_ms > 0
    uniform = StudentSpec.load(tmp_path / "students" / "wrn_16_1-uniform50.json")
    assert all(snapped.widths[n] >= w for n, w in uniform.widths.items())  # snapping up never removes channels
    half = StudentSpec.load(tmp_path / "students" / "wrn_16_1-uniform50.json")
    assert set(half.widths.values()) >= {8, 16, 32}  # inner widths 16/32/64 halved, streams kept
    assert "wrote" in capsys.readouterr().out
    assert run_demo("wrn_16_1", tmp_path, grid=8, timing="quick") == 0
    assert "reusing" in capsys.readouterr().out
