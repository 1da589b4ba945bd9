"""One-op ONNX graphs, built directly with ``onnx.helper`` (milliseconds, no export).

A producer convolution is built as Conv + Relu: at inference ONNX Runtime and OpenVINO
fold the BatchNorm into the convolution's weights and bias, so that is what they run.
"""

from __future__ import annotations

import numpy as np

from ..errors import require
from .ops import OpSpec


def op_model(op: OpSpec, width: int, batch: int, opset: int = 17):
    """An ``onnx.ModelProto`` running ``op`` at ``width``, with random weights; input named ``x``."""
    onnx = require("onnx", "the ONNX Runtime / OpenVINO backends", "onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    cin, cout, groups = op.shape_at(width)
    nodes, inits = [], []
    if op.kind == "linear":
        x_shape, y_shape = [batch, cin], [batch, cout]
        inits.append(numpy_helper.from_array(rng.standard_normal((cout, cin), dtype=np.float32) * 0.05, "w"))
        inits.append(numpy_helper.from_array(np.zeros(cout, np.float32), "b"))
        nodes.append(helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1))
    else:
        (kh, kw), (sh, sw), (ph, pw), (h, w) = op.kernel, op.stride, op.padding, op.hw
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        x_shape, y_shape = [batch, cin, h, w], [batch, cout, oh, ow]
        weight = rng.standard_normal((cout, cin // groups, kh, kw), dtype=np.float32) * 0.05
        inits.append(numpy_helper.from_array(weight, "w"))
        inputs = ["x", "w"]
        if op.norm_act:  # the folded norm's bias, then the activation
            inits.append(numpy_helper.from_array(np.zeros(cout, np.float32), "b"))
            inputs.append("b")
        out = "c" if op.norm_act else "y"
        nodes.append(helper.make_node("Conv", inputs, [out], kernel_shape=[kh, kw], strides=[sh, sw],
                                      pads=[ph, pw, ph, pw], group=groups))
        if op.norm_act:
            nodes.append(helper.make_node("Relu", ["c"], ["y"]))
    graph = helper.make_graph(
        nodes, "op",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8)
    onnx.checker.check_model(model)
    return model, x_shape


def export_model(model, input_size, batch: int, dynamic_batch: bool = False) -> bytes:
    """A whole torch network as ONNX bytes (eval mode: BatchNorm folded into convolutions);
    input ``x``, output ``y``; with ``dynamic_batch`` the batch dimension is left free."""
    import io
    import warnings

    import torch

    require("onnx", "exporting to ONNX", "onnx")
    buf = io.BytesIO()
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(model, (torch.zeros(batch, *input_size),), buf, input_names=["x"],
                              output_names=["y"], dynamo=False, opset_version=17,
                              dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}} if dynamic_batch else None)
    finally:
        model.train(was_training)
    return buf.getvalue()
