"""One contract, every backend (skipped where its package is not installed)."""

import pytest
import torch

from staircase import create_model
from staircase.errors import StaircaseError
from staircase.profile.backends import BACKENDS, get_backend
from staircase.profile.ops import OpSpec
from staircase.profile.timing import Measurement, TimingProtocol, time_relative

FAST = TimingProtocol(warmup_s=0.0, min_block_s=0.0005, min_samples=3, max_samples=5, max_s=0.2)
CONV = OpSpec("conv", "out", 8, 16, (3, 3), (2, 2), (1, 1), (12, 12), norm_act=True)


def _backend(name, **kw):
    try:
        return get_backend(name, threads=1, **kw)
    except StaircaseError as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=[pytest.param(name, marks=() if name == "torch" else pytest.mark.backend)
                        for name in sorted(BACKENDS)])
def backend(request):
    return _backend(request.param)


@pytest.mark.parametrize("op", [
    CONV,
    OpSpec("conv", "in", 8, 16, (1, 1), (1, 1), (0, 0), (6, 6)),
    OpSpec("conv", "depthwise", 8, 8, (3, 3), (1, 1), (1, 1), (6, 6), norm_act=True),
    OpSpec("linear", "in", 32, 10),
])
def test_every_op_kind_runs_and_times(backend, op):
    run = backend.prepare_op(op, 5)
    run()
    m = backend.time(run, FAST)
    assert m.median_ms > 0 and m.n >= 3


@pytest.mark.parametrize("paired", [False, True])
def test_whole_network_runs(backend, paired):
    run = backend.prepare_model(create_model("wrn_16_1").eval(), (3, 32, 32), paired=paired)
    assert tuple(torch.as_tensor(run()).shape) == (1, 10)


@pytest.mark.backend
def test_onnxruntime_threads_spin_as_deployed_and_stop_between_calls_where_sessions_are_paired(monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    spinning = []
    real = ort.InferenceSession

    def entry(opts, key):
        try:
            return opts.get_session_config_entry(key)
        except Exception:  # noqa: BLE001 - unset: the runtime's default
            return "-"

    def recording(model, opts, **kw):
        spinning.append((entry(opts, "session.intra_op.allow_spinning"), entry(opts, "session.force_spinning_stop")))
        return real(model, opts, **kw)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    be = _backend("onnxruntime")
    model = create_model("wrn_16_1").eval()
    be.prepare_model(model, (3, 32, 32))
    be.prepare_model(model, (3, 32, 32), paired=True)
    be.prepare_op(CONV, 5)
    assert spinning == [("-", "-"), ("-", "1"), ("0", "-")]  # deployed; within a call; never


class _ScriptedBackend:
    """Answers ``time`` with the next of a list of (ratio, ms) pairs."""

    def __init__(self, answers):
        self.answers, self.calls = list(answers), []

    def time(self, run, protocol, reference=None):
        self.calls.append((run, reference))
        ratio, ms = self.answers.pop(0)
        return Measurement(ms, 0.1 * ms, 10, False, 10, ratio, 0.01, ms / ratio)


def test_time_relative_pairs_each_measurement_and_outvotes_a_disturbed_one():
    be = _ScriptedBackend([(0.80, 4.0), (1.60, 8.0), (0.82, 4.1)])
    rel = time_relative(be, "student", "full", pairs=3)
    assert be.calls == [("student", "full")] * 3  # block by block, never alone
    assert rel.ratio == pytest.approx(0.82) and rel.run_ms == pytest.approx(4.1)
    assert rel.reference_ms == pytest.approx(5.0) and len(rel.runs) == 3


def test_fingerprint_records_what_latency_depends_on(backend):
    fp = backend.fingerprint()
    for key in ("backend", "backend_version", "device", "cpu", "threads", "precision", "batch", "dtype", "torch"):
        assert key in fp
    assert fp["threads"] == 1 and fp["precision"] == "f32"


@pytest.mark.backend
def test_one_op_graph_matches_torch_numerics():
    pytest.importorskip("onnxruntime")
    from staircase.profile.onnx_graph import op_model

    model, shape = op_model(OpSpec("conv", "out", 4, 8, (3, 3), (1, 1), (1, 1), (5, 5), norm_act=True), 6, 2)
    import numpy as np
    import onnxruntime as ort
    import torch
    from onnx import numpy_helper

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    y = sess.run(None, {"x": x})[0]
    weights = {t.name: numpy_helper.to_array(t).copy() for t in model.graph.initializer}
    expected = torch.relu(torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weights["w"]),
                                                     torch.from_numpy(weights["b"]), padding=1)).numpy()
    assert y.shape == (2, 6, 5, 5)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_bad_backend_device_precision_are_clear():
    with pytest.raises(StaircaseError, match="unknown backend 'tensorrt'; available: torch, onnxruntime, openvino"):
        get_backend("tensorrt")
    with pytest.raises(StaircaseError, match="has no device 'cuda:7'; available here: cpu"):
        get_backend("torch", "cuda:7")
    pytest.importorskip("onnxruntime")
    with pytest.raises(StaircaseError, match="runs precision f32/int8, not 'bf16'; bf16 runs on --backend torch or "
                                             "openvino"):
        get_backend("onnxruntime", precision="bf16")


@pytest.mark.backend
def test_openvino_compiles_with_the_precision_asked_for():
    """OpenVINO on a CPU with bf16 defaults to it: f32 must be set, and the compiled model
    must say so (the fingerprint only repeats what was asked)."""
    f32 = _backend("openvino", precision="f32")
    compiled = f32.prepare_op(CONV, 5).compiled
    assert compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
    import openvino as ov

    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no bf16")
    compiled = _backend("openvino", precision="bf16").prepare_op(CONV, 5).compiled
    assert compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "bf16"


def test_networks_compared_at_one_latency_are_measured_together_in_shuffled_passes():
    import statistics

    from staircase.design.measured import measure_together

    class Together:
        """A backend whose every network is its name's ratio times the pass's speed."""

        def __init__(self):
            self.order, self.prepared = [], []

        def prepare_model(self, model, size, paired=False):
            assert paired
            self.prepared.append(model.tag)
            return model.tag

        def time(self, run, protocol, reference=None):
            assert reference == "teacher"
            self.order.append(run)
            disturbed = self.order.count(run) in (2, 5)  # two of each network's six passes
            ratio = {"a": 0.5, "b": 0.7}[run] * (1.1 if disturbed else 1.0)
            return Measurement(ratio, 0.01, 10, False, 10, ratio, 0.01, 1.0)

    def net(tag):
        m = torch.nn.Identity()
        m.tag = tag
        return m

    be = Together()
    found = measure_together(be, net("teacher"), {"a": net("a"), "b": net("b")}, (3, 8, 8), passes=6)
    assert sorted(be.order) == ["a"] * 6 + ["b"] * 6
    assert len({tuple(be.order[i:i + 2]) for i in range(0, 12, 2)}) == 2  # the order changes between passes
    a = found["a"]
    assert a.ratio == pytest.approx(0.5) and a.low == pytest.approx(0.5) and a.high == pytest.approx(0.55)
    assert a.ratio == statistics.median(a.passes)  # the disturbed passes do not move it
    assert found["b"].to_dict()["ci95"] == [found["b"].low, found["b"].high]
    refused = Together()
    with pytest.raises(StaircaseError, match="at least 6 passes"):
        measure_together(refused, net("teacher"), {"a": net("a")}, (3, 8, 8), passes=5)
    assert refused.prepared == []  # refused before any network was prepared
