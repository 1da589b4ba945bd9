"""Checks shared by the tests."""


def one_line_error(proc, *fragments):
    """A user's error: exit 1, one line on stderr that starts with ``staircase: error:`` and
    names each of ``fragments``."""
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("staircase: error: "), proc.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def stepped_onnxruntime(step: int = 8, ms_per_unit: float = 2e-6):
    """An ONNX Runtime backend whose timings are computed, not measured: every convolution
    costs ceil(in / step) * ceil(out / step) * kernel * output pixels, so every slot has
    clean steps of ``step`` channels. A profile made with it is an ONNX Runtime profile of
    this machine (same fingerprint) that no load on the machine can blur."""
    import math

    import torch
    from torch import nn

    from staircase.profile.backends import OnnxRuntimeBackend
    from staircase.profile.timing import Measurement

    def units(cin: int, cout: int, groups: int, kernel, hw) -> float:
        return (math.ceil(cin / groups / step) * math.ceil(cout / step) * kernel[0] * kernel[1] * hw[0] * hw[1]
                * step * step)

    def timed(cost: float):
        run = lambda: None  # noqa: E731 - nothing runs
        run.ms = cost * ms_per_unit + 0.01
        return run

    class Stepped(OnnxRuntimeBackend):
        def prepare_op(self, op, width):
            cin, cout, groups = op.shape_at(width)
            if op.kind == "linear":
                return timed(math.ceil(cin / step) * math.ceil(cout / step) * step * step)
            oh = (op.hw[0] + 2 * op.padding[0] - op.kernel[0]) // op.stride[0] + 1
            ow = (op.hw[1] + 2 * op.padding[1] - op.kernel[1]) // op.stride[1] + 1
            return timed(units(cin, cout, groups, op.kernel, (oh, ow)))

        def prepare_model(self, model, input_size, paired=False):
            total, hooks = [0.0], []

            def hook(m, _inputs, out):
                if isinstance(m, nn.Conv2d):
                    total[0] += units(m.in_channels, m.out_channels, m.groups, m.kernel_size, out.shape[2:])
                else:
                    total[0] += math.ceil(m.in_features / step) * math.ceil(m.out_features / step) * step * step

            for m in model.modules():
                if isinstance(m, nn.Conv2d | nn.Linear):
                    hooks.append(m.register_forward_hook(hook))
            with torch.no_grad():
                model.eval()(torch.zeros(1, *input_size))
            for h in hooks:
                h.remove()
            return timed(total[0])

        def time(self, run, protocol, reference=None):
            if reference is None:
                return Measurement(run.ms, 0.0, 100, False, 10)
            return Measurement(run.ms, 0.0, 100, False, 10, run.ms / reference.ms, 0.0, reference.ms)

    return Stepped(threads=2)


def load_script(name: str):
    """A script of ``scripts/`` imported as a module (its functions, without running it)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
