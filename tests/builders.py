"""Small ONNX models in a few lines, and onnxruntime as the oracle."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 10  # onnxruntime 1.31 reads IR <= 13; onnx 1.23's make_model writes 14
#: int8 weights drawn from [-64, 64) ("reduce range", 7 bits) in tests against onnxruntime: its
#: 8-bit x int8 kernels on x86 CPUs without VNNI (AVX2's vpmaddubsw) saturate the sum of two
#: products at int16, so with full 8-bit weights its results depend on the machine (measured:
#: off by up to 198 LSB on an AVX2 machine). onnxruntime's quantizer has reduce_range for the
#: same reason. onnx.reference checks the full range exactly.
W7 = (-64, 64)


def make_model(nodes: Sequence[tuple], inputs: Mapping[str, tuple], outputs: Mapping[str, tuple],
               inits: Mapping[str, np.ndarray] | None = None, opset: int = 17,
               dtype: int = TensorProto.FLOAT, name: str = "g") -> onnx.ModelProto:
    """``nodes`` are ``(op, inputs, outputs)`` or ``(op, inputs, outputs, attrs)`` (node names
    n0, n1, ...); inputs/outputs map names to shapes (None: unknown shape)."""
    ns = [helper.make_node(t[0], list(t[1]), list(t[2]), name=f"n{k}", **(t[3] if len(t) > 3 else {}))
          for k, t in enumerate(nodes)]
    g = helper.make_graph(
        ns, name,
        [helper.make_tensor_value_info(k, dtype, s) for k, s in inputs.items()],
        [helper.make_tensor_value_info(k, dtype, s) for k, s in outputs.items()],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = IR_VERSION
    return m


def ort_run(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``model`` with onnxruntime on the CPU; returns output name -> array."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, dict(feeds))))


RNN_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
RNN_OUTPUTS = {"LSTM": ("Y", "Y_h", "Y_c"), "GRU": ("Y", "Y_h"), "RNN": ("Y", "Y_h")}


def rnn_model(op: str, T: int = 3, N: int = 2, I: int = 4, H: int = 5,  # noqa: E741
              direction: str = "forward", layout: int = 0, bias: bool = True,
              lens: list[int] | None = None, h0: bool = False, c0: bool = False,
              peep: bool = False, outputs: tuple[str, ...] | None = None, dtype=np.float32,
              runtime_weights: bool = False, seed: int = 0, opset: int = 14, **attrs):
    """One recurrent node ``rnn0`` with seeded weights (initializers, or graph inputs with
    ``runtime_weights``) and its feeds: X, and sequence_lens when given."""
    rng = np.random.default_rng(seed)
    G, D = RNN_GATES[op], 2 if direction == "bidirectional" else 1
    arrs = {"X": rng.standard_normal((T, N, I) if layout == 0 else (N, T, I)),
            "W": rng.standard_normal((D, G * H, I)) * 0.5,
            "R": rng.standard_normal((D, G * H, H)) * 0.5}
    if bias:
        arrs["B"] = rng.standard_normal((D, 2 * G * H))
    state = (D, N, H) if layout == 0 else (N, D, H)
    for flag, name, shape in ((h0, "initial_h", state), (c0, "initial_c", state),
                              (peep, "P", (D, 3 * H))):
        if flag:
            arrs[name] = rng.standard_normal(shape)
    arrs = {k: v.astype(dtype) for k, v in arrs.items()}
    if lens is not None:
        arrs["sequence_lens"] = np.array(lens, np.int32)
    order = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    names = [k if k in arrs else "" for k in order[:8 if op == "LSTM" else 6]]
    while names[-1] == "":
        names.pop()
    want = outputs or RNN_OUTPUTS[op]
    outs = [o if o in want else "" for o in RNN_OUTPUTS[op]]
    while outs[-1] == "":
        outs.pop()
    if direction != "forward":
        attrs["direction"] = direction
    if layout:
        attrs["layout"] = layout
    node = helper.make_node(op, names, outs, name="rnn0", hidden_size=H, **attrs)
    feed_names = {"X", "sequence_lens"} | ({"W", "R", "B", "initial_h", "initial_c", "P"}
                                          if runtime_weights else set())
    feeds = {k: v for k, v in arrs.items() if k in feed_names}
    tt = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    g = helper.make_graph(
        [node], "rnn",
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for k, v in feeds.items()],
        [helper.make_tensor_value_info(o, tt, None) for o in outs if o],
        [numpy_helper.from_array(v, k) for k, v in arrs.items() if k not in feeds])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = IR_VERSION
    return m, feeds


def load_benchmark(module: str, file: str):
    """The script ``benchmarks/<file>`` imported as the module ``module`` (a name unique across
    the tests, so two test files importing one script do not share it by accident)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / file
    spec = importlib.util.spec_from_file_location(module, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    spec.loader.exec_module(mod)
    return mod


def node_model(op: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str],
               inits: Mapping[str, np.ndarray] | None = None, opset: int = 18,
               **attrs) -> onnx.ModelProto:
    """One node ``op`` (named n0) reading ``inputs`` (graph inputs typed by the arrays' shapes
    and dtypes; an empty name in the list is an omitted optional input) and ``inits``
    (initializers), in that order of ``inputs`` then ``inits``, writing ``outputs``, whose types
    onnx shape inference fills in."""
    inits = dict(inits or {})
    names = list(inputs) + list(inits)
    node = helper.make_node(op, names, list(outputs), name="n0", **attrs)

    def info(k: str, a: np.ndarray):
        return helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)

    g = helper.make_graph([node], "g", [info(k, np.asarray(a)) for k, a in inputs.items()],
                          [helper.make_tensor_value_info(k, TensorProto.UNDEFINED, None)
                           for k in outputs],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = IR_VERSION
    inferred = onnx.shape_inference.infer_shapes(m)   # not strict: tests build bad models too
    known = {v.name: v for v in inferred.graph.value_info} | {
        v.name: v for v in inferred.graph.output}
    for o in m.graph.output:
        if o.name in known and known[o.name].type.tensor_type.elem_type:
            o.type.CopyFrom(known[o.name].type)
    return m


def check_against_ort(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray],
                      targets: Sequence[str] = ("host", "cpu"),
                      constant_inputs: Mapping[str, np.ndarray] | None = None,
                      rtol: float = 1e-5, atol: float = 1e-6) -> dict[str, np.ndarray]:
    """Compile ``model`` for each target through the public API and compare every output
    (dtype, shape, values; NaN equal to NaN) with onnxruntime's on ``feeds`` plus the bound
    ``constant_inputs``. Returns onnxruntime's outputs."""
    import onnxcc

    consts = dict(constant_inputs or {})
    want = ort_run(model, {**feeds, **consts})
    for t in targets:
        got = onnxcc.compile(model, t, constant_inputs=consts or None).run(dict(feeds))
        assert sorted(got) == sorted(want), t
        for k, w in want.items():
            assert got[k].dtype == w.dtype and got[k].shape == w.shape, (t, k, got[k].dtype,
                                                                         got[k].shape)
            if w.dtype.kind == "f":
                np.testing.assert_allclose(got[k], w, rtol=rtol, atol=atol, equal_nan=True,
                                           err_msg=f"{t} {k}")
            else:
                np.testing.assert_array_equal(got[k], w, err_msg=f"{t} {k}")
    return want


REQUANTIZE_MAIN = r"""#include <stdint.h>
#include <stdio.h>
%s
static const %s xs[] = {%s};
static const int32_t ms[] = {%s};
static const int32_t ss[] = {%s};
int main(void)
{
    size_t i;
    for (i = 0; i < sizeof xs / sizeof xs[0]; ++i)
        printf("%%ld\n", (long)%s(xs[i], ms[i], ss[i]));
    return 0;
}
"""


def run_c_requantize(tmp_dir, helper_text: str, fn: str, xs, ms, ss, cc: str = "gcc",
                     acc: str = "int32_t") -> np.ndarray:
    """Build a C program holding the requantize helper ``helper_text`` (the text the C renderer
    emits) with ``cc`` under the project's warning flags, -Wshadow and UBSan (any undefined
    behaviour aborts), run ``fn(xs[i], ms[i], ss[i])`` over the arrays (accumulators of C type
    ``acc``, int32 multipliers and shifts) and return its int32 results as int64. Raises
    CalledProcessError when the build or the run fails."""
    import subprocess
    from pathlib import Path

    from onnxcc.runtime.build import WARN_FLAGS

    def lst(a) -> str:
        if acc == "int64_t" and a is xs:
            return ", ".join(f"INT64_C({int(v)})" for v in a)
        return ", ".join(f"{int(v)}" if v != -2**31 else "INT32_MIN" for v in a)

    src, exe = Path(tmp_dir) / f"{fn}.c", Path(tmp_dir) / fn
    src.write_text(REQUANTIZE_MAIN % (helper_text, acc, lst(xs), lst(ms), lst(ss), fn))
    subprocess.run([cc, *WARN_FLAGS, "-Wshadow", "-fsanitize=undefined",
                    "-fno-sanitize-recover=all", str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return np.array(out.split(), np.int64)


def qlinear_conv(C, M, H, W, k, pads, stride=1, dilation=1, x_type=np.int8, xz=-5,
                  seed=0, w_scale=(0.004, 0.001)):
    """QLinearConv x (1, C, H, W) -> y of x's type, int8 weights per output channel (in W7:
    onnxruntime's uint8 x int8 kernels saturate int16 pair sums on x86); ``k`` an int or
    (kh, kw), ``pads`` ONNX's 4 (top, left, bottom, right); the weight scales
    ``random * w_scale[0] + w_scale[1]``. Returns (model, x); the draws of the seeded generator
    in the order w, w scales, bias, x."""
    r = np.random.default_rng(seed)
    kh, kw = (k, k) if isinstance(k, int) else k
    OH = (H + pads[0] + pads[2] - dilation * (kh - 1) - 1) // stride + 1
    OW = (W + pads[1] + pads[3] - dilation * (kw - 1) - 1) // stride + 1
    tp = TensorProto.UINT8 if x_type == np.uint8 else TensorProto.INT8
    inits = {"xs": np.float32(0.02), "xz": x_type(xz),
             "w": r.integers(*W7, (M, C, kh, kw)).astype(np.int8),
             "ws": (r.random(M) * w_scale[0] + w_scale[1]).astype(np.float32),
             "wz": np.zeros(M, np.int8), "ys": np.float32(0.05),
             "yz": x_type(128 if x_type == np.uint8 else 2),
             "b": r.integers(-3000, 3000, M).astype(np.int32)}
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"],
                            ["y"], pads=list(pads), strides=[stride] * 2,
                            dilations=[dilation] * 2, name="conv")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", tp, [1, C, H, W])],
                          [helper.make_tensor_value_info("y", tp, [1, M, OH, OW])],
                          [numpy_helper.from_array(np.asarray(v), n) for n, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    info = np.iinfo(x_type)
    x = r.integers(info.min, info.max + 1, (1, C, H, W)).astype(x_type)
    return m, x
