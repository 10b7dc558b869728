"""The C of the loss, indexing, bitwise, matrix, cumulative, selection, linear-algebra and Shrink
kernels compiles with -Werror under gcc, clang and arm-none-eabi-gcc (cortex-m4 flags), runs
clean under -fsanitize=address,undefined with the outputs of the plain build (runtime indices,
shift amounts and lengths included), and the loop-IR interpreter gives the same outputs."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import onnxcc
import pytest
from builders import node_model
from onnxcc.codegen.interpret import run_program
from onnxcc.codegen.lower import lower_program
from onnxcc.codegen.verify import verify

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4, 5)).astype(np.float32)
I = RNG.integers(-3, 3, (3, 4, 5)).astype(np.int64)  # noqa: E741
U8 = RNG.integers(0, 255, (3, 4), dtype=np.uint8)
CASES = {
    "nll": ("NegativeLogLikelihoodLoss", {"x": X, "t": RNG.integers(0, 4, (3, 5))}, ["y"], {},
            {"reduction": "mean", "ignore_index": 1}, 13),
    "sce": ("SoftmaxCrossEntropyLoss", {"x": X, "t": RNG.integers(0, 4, (3, 5))}, ["y", "lp"],
            {}, {}, 13),
    "gather_elements": ("GatherElements", {"x": X, "i": I}, ["y"], {}, {"axis": 0}, 13),
    "scatter_elements": ("ScatterElements", {"x": X, "i": I, "u": X}, ["y"], {},
                         {"reduction": "add"}, 18),
    "gather_nd": ("GatherND", {"x": X, "i": I[..., :2]}, ["y"], {}, {}, 13),
    "scatter_nd": ("ScatterND", {"x": X, "i": np.array([[1, -1], [0, 2]]),
                                 "u": X[:2, 0]}, ["y"], {}, {"reduction": "max"}, 18),
    "bitshift": ("BitShift", {"x": U8, "s": np.full((4,), 9, np.uint8)}, ["y"], {},
                 {"direction": "LEFT"}, 28),
    "bitshift_signed": ("BitShift", {"x": U8.astype(np.int8), "s": np.array([-1, 3, 8, 127],
                                                                            np.int8)},
                        ["y"], {}, {"direction": "RIGHT"}, 28),
    "bitwise_not": ("BitwiseNot", {"x": U8.astype(np.uint64)}, ["y"], {}, {}, 18),
    "trilu": ("Trilu", {"x": X, "k": np.array(-1)}, ["y"], {}, {"upper": 0}, 14),
    "cumsum": ("CumSum", {"x": X, "a": np.array(-2)}, ["y"], {}, {"reverse": 1}, 14),
    "shrink": ("Shrink", {"x": I.astype(np.int8)}, ["y"], {}, {"bias": 200.0}, 9),
    "topk": ("TopK", {"x": X}, ["v", "i"], {"k": np.array([2])}, {"axis": 1}, 11),
    "onehot": ("OneHot", {"i": I, "v": np.array([0.0, 1.0], np.float32)}, ["y"],
               {"d": np.array(3)}, {}, 11),
    "reverse_sequence": ("ReverseSequence", {"x": X, "l": np.array([4, 9, -2, 0])}, ["y"], {},
                         {}, 10),
    "center_crop_pad": ("CenterCropPad", {"x": X}, ["y"], {"s": np.array([2, 6, 3])}, {}, 18),
    "einsum": ("Einsum", {"a": X, "b": X}, ["y"], {}, {"equation": "ijk,ilk->jl"}, 12),
    "det": ("Det", {"x": X[:, :3, :3]}, ["y"], {}, {}, 11),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_warning_free_and_sanitizer_clean(name):
    op, feeds, outs, inits, attrs, opset = CASES[name]
    m = node_model(op, feeds, outs, inits=inits, opset=opset, **attrs)
    if op == "OneHot":   # depth before values
        m.graph.node[0].input[:] = ["i", "d", "v"]
    cm = onnxcc.compile(m, "host")
    plain, san = cm.run(feeds), cm.run(feeds, sanitize=True)
    for k in plain:
        np.testing.assert_array_equal(san[k], plain[k], err_msg=k)
    p = lower_program(cm.graph)
    verify(p)
    for b, got in zip(p.outputs, run_program(p, [feeds[b.value] for b in p.inputs])):
        np.testing.assert_allclose(got, plain[b.value], rtol=1e-6, atol=1e-6, err_msg=b.value)
    from onnxcc.runtime.build import CORTEX_M4_FLAGS, WARN_FLAGS

    prefix = cm.mmap["c_prefix"]
    for cc, flags in (("gcc", ()), ("clang", ()), ("arm-none-eabi-gcc", CORTEX_M4_FLAGS)):
        if not shutil.which(cc):
            continue
        subprocess.run([cc, *WARN_FLAGS, *flags, "-O1", f"-I{cm.lib_dir}", "-c",
                        str(cm.lib_dir / f"{prefix}.c"), "-o", "/dev/null"], check=True)
