"""The MLPerf-Tiny-shaped models of benchmarks/models.py (``TINY_MODELS``) are valid ONNX of the
published shapes that onnxcc compiles to onnxruntime's outputs, and benchmarks/mcu.py prints its
table for one small model on the emulated Cortex-M4."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxcc
import pytest
from builders import load_benchmark
from onnx import numpy_helper

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"

M = load_benchmark("onnxcc_bench_models_tiny", "models.py")

# (input shape, output shape, {op: count}) from the MLPerf Tiny reference models
SHAPES = {
    "ds_cnn": ((1, 1, 49, 10), (1, 12), {"Conv": 1 + 2 * 4, "BatchNormalization": 9,
                                         "GlobalAveragePool": 1, "Gemm": 1}),
    "resnet8": ((1, 3, 32, 32), (1, 10), {"Conv": 1 + 2 * 3 + 2, "Add": 3, "Gemm": 1}),
    "mobilenet_v1_025_vww": ((1, 3, 96, 96), (1, 2), {"Conv": 1 + 2 * 13 + 1}),
    "autoencoder": ((1, 640), (1, 640), {"Gemm": 10, "BatchNormalization": 9, "Relu": 9}),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_tiny_model_shapes_and_agreement(name):
    model = M.build(name)
    (in_name, in_shape), = M.input_specs(model)
    out = model.graph.output[0]
    want_in, want_out, ops = SHAPES[name]
    assert (in_name, in_shape) == ("input", want_in)
    assert tuple(d.dim_value for d in out.type.tensor_type.shape.dim) == want_out
    types = [n.op_type for n in model.graph.node]
    assert {op: types.count(op) for op in ops} == ops
    # seeded random weights, not constants
    ws = [numpy_helper.to_array(t) for t in model.graph.initializer]
    assert all(w.size <= 1 or np.unique(w).size > 1 for w in ws)
    ref = M.check(model)
    got = onnxcc.compile(model, "host").run(M.random_feeds(model))
    np.testing.assert_allclose(got["output"], ref["output"], rtol=1e-3, atol=1e-5)


def test_ds_cnn_macs_from_the_graph():
    """Conv 10x4 (40 taps) to 64 channels at 25x5, four blocks of depthwise 3x3 and pointwise
    64x64 at 25x5, the 64x12 classifier."""
    mcu = load_benchmark("onnxcc_bench_mcu", "mcu.py")
    cm = onnxcc.compile(M.build("ds_cnn"), "host")
    px = 25 * 5
    assert mcu.graph_macs(cm) == px * 64 * 40 + 4 * (px * 64 * 9 + px * 64 * 64) + 64 * 12


def _pw_dw_pw(C: int = 8, H: int = 16):
    """x (1,C,H,H) -> Conv 1x1 -> depthwise Conv 3x3 (pad 1) -> Conv 1x1 to 2 channels."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(3)
    w = {"w0": (C, C, 1, 1), "w1": (C, 1, 3, 3), "w2": (2, C, 1, 1)}
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), k)
             for k, s in w.items()]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"]),
             helper.make_node("Conv", ["a", "w1"], ["b"], group=C, pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["b", "w2"], ["y"])]
    g = helper.make_graph(nodes, "pdp",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, C, H, H))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 2, H, H))],
                          inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_floors_name_what_they_count():
    """The table's floors: a depthwise Conv between two pointwise ones peaks with its input and
    output live (two 8x16x16 float tensors, 16,384 bytes: the tensor floor); on the Cortex-M4 it
    writes its output over its input (the plan's in-place list names it), so its lower bound,
    the in-place floor, is one tensor (8,192 bytes). On the host nothing is in place and the two
    floors agree."""
    mcu = load_benchmark("onnxcc_bench_mcu", "mcu.py")
    one = 8 * 16 * 16 * 4
    cm = onnxcc.compile(_pw_dw_pw(), "cortex-m4", max_recompute=0)
    assert cm.graph.meta["memory_plan"].inplace
    assert cm.graph.meta["memory_plan"].lower_bound == one
    assert mcu.tensor_floor(cm) == 2 * one
    assert cm.arena_size >= one
    host = onnxcc.compile(_pw_dw_pw(), "host", max_recompute=0)
    assert not host.graph.meta["memory_plan"].inplace
    assert mcu.tensor_floor(host) == host.graph.meta["memory_plan"].lower_bound == 2 * one


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc")
                    is None, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_mcu_benchmark_mlp_table():
    proc = subprocess.run([sys.executable, str(BENCH / "mcu.py"), "--models", "mlp"],
                          check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "== mlp: input 1x784, 109,184 MACs; cortex-m4 on QEMU mps2-an386, -Os" in out
    assert "n/a (not built yet)" not in out
    assert "float: not patched (" in out   # an MLP has no spatial stage
    row = {m.group(1).strip(): m.group(2).split() for m in
           re.finditer(r"^([A-Za-z][^\n]*?)\s{2,}(\S.*)$", out, re.MULTILINE)}
    n_float, n_int8 = (int(v.replace(",", "")) for v in row["instructions / inference"])
    assert n_float > 109_184 and n_int8 > 109_184 / 2   # >= 1 float MAC, <= 2 int8 MACs per insn
    per_mac = [float(v) for v in row["instructions / MAC"]]
    assert per_mac == pytest.approx([n_float / 109_184, n_int8 / 109_184], abs=0.01)
    # size mode: less code than the speed build, nothing in RAM outside the arena
    code = [int(v.replace(",", "")) for v in row["code"]]
    small = [int(v.replace(",", "")) for v in row["size mode: code"]]
    assert all(s < c for s, c in zip(small, code)), (small, code)
    assert row["size mode: RAM beyond arena"] == ["0", "0"]
    assert all(int(v.replace(",", "")) > 109_184 / 2
               for v in row["size mode: instructions / inference"])
    assert all(float(v) <= 1e-5 for v in row["size mode: max |error|"])
    float_err, int8_err = (float(v) for v in row["max |error|"])
    # int8 against onnxcc's numpy reference: the integer layers agree bit for bit; the float
    # Softmax after the last dequantize may differ by libm rounding
    assert float_err <= 1e-5 and int8_err <= 1e-6
    # the MLP's MACs are all dense; its other kernels (Softmax; in int8 also quantizing the
    # input and dequantizing the logits: 12% measured, 39% since the blocked int8 dense layers
    # run 4.7x faster) take the rest of the instructions
    dense = [float(v) for v in row["instr / MAC, dense"]]
    assert all(d <= p for d, p in zip(dense, per_mac))
    assert row["instr / MAC, depthwise conv"] == ["n/a", "n/a"]
    outside = [float(v.rstrip("%")) for v in row["share outside MAC kernels"]]
    assert 0 < outside[0] < 5 and 0 < outside[1] < 50
    for d, pm, o in zip(dense, per_mac, outside):   # every MAC is dense
        assert d == pytest.approx(pm * (1 - o / 100), rel=0.01)
    arena = [int(v.replace(",", "")) for v in row["arena"]]
    floor = [int(v.replace(",", "")) for v in row["tensor floor (unpatched, no in-place)"]]
    assert all(a >= f > 0 for a, f in zip(arena, floor))
    # an MLP has no depthwise Conv and no patch: its three floors are one
    assert row["in-place floor (unpatched)"] == row["tensor floor (unpatched, no in-place)"]
    assert row["patched floor (as compiled)"] == row["tensor floor (unpatched, no in-place)"]
    small_arena = [int(v.replace(",", "")) for v in row["size mode: arena"]]
    assert all(a >= f for a, f in zip(small_arena, floor))
    assert row["patch"] == ["none", "none"]
    assert row["arena without patching"] == row["arena"]


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs gcc-arm-none-eabi")
def test_mcu_benchmark_notes_a_board_too_small_and_goes_on():
    """The M0+ runs on QEMU's micro:bit (256 KiB flash, 16 KiB SRAM): a model whose weights
    overflow it leaves its columns as dashes with the reason in a note instead of stopping
    the benchmark (float: 2.4 MB of weights, more than even the RP2040's 2 MiB of flash, so the
    compile itself refuses; int8: 600 KB, which the RP2040 holds and the linker refuses)."""
    from onnx import TensorProto, helper

    mcu = load_benchmark("onnxcc_bench_mcu", "mcu.py")
    r = np.random.default_rng(0)
    w = numpy_helper.from_array(r.standard_normal((600, 1000)).astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("Gemm", ["input", "w"], ["output"], transB=1)], "g",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1000])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 600])],
                          [w])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    res = mcu.measure("big", model, target="cortex-m0plus", opt="-Os", samples=2, timeout=60)
    assert res["macs"] is None   # nothing ran
    assert [n.split(": ", 1)[0] for n in res["notes"]] == [
        "float does not run on QEMU microbit", "int8 does not run on QEMU microbit"]
    assert "flash" in res["notes"][0]
    assert res["notes"][1].endswith(re.search(r"region `FLASH' overflowed by \d+ bytes",
                                              res["notes"][1]).group(0))
    table = mcu.format_table("big", res, "cortex-m0plus", "microbit", "-Os")
    assert table.splitlines()[0] == "== big: not run on microbit"


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs gcc-arm-none-eabi")
def test_onnx2c_bytes_separates_the_initializers(tmp_path):
    """``onnx2c_bytes`` counts onnx2c's C as onnxcc's library is counted: the arrays of the
    model's initializers (``tensor_<name>``, the name made a C identifier) are weights, the
    rest of flash is code, .data + .bss is RAM. A stand-in for the onnx2c binary prints C of
    onnx2c's shape (it is not shipped here; users pass their own with ``--onnx2c``)."""
    from onnx import TensorProto, helper

    mcu = load_benchmark("onnxcc_bench_mcu", "mcu.py")
    w = numpy_helper.from_array(np.ones((4, 25), np.float32), "fc.w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "fc.w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 25])], [w])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    c = ("static const float tensor_fc_w[4][25] = {{1}};\n"
         "static const float other[3] = {1, 2, 3};\n"
         "float tensor_y_buf[1][25];\n"
         "void entry(const float x[1][4], float y[1][25]) {\n"
         "  for (int j = 0; j < 25; j++) { float s = other[j % 3];\n"
         "    for (int k = 0; k < 4; k++) s += x[0][k] * tensor_fc_w[k][j];\n"
         "    tensor_y_buf[0][j] = s; y[0][j] = s; } }\n")
    fake = tmp_path / "onnx2c"
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{c}EOF\n")
    fake.chmod(0o755)
    got = mcu.onnx2c_bytes(str(fake), model, "cortex-m4")
    assert got["weights"] == 400 and got["ram"] == 100
    # the function and the 12-byte array that is no initializer
    assert 12 + 20 < got["code"] < 200, got
