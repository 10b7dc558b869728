"""FIFO depths of io_stream designs, checked by a concurrent C-simulation: every DATAFLOW process
runs in its own thread on FIFOs of their pragmas' depths (``run_testbench(threads=True)``), so a
FIFO too shallow for the design deadlocks the run instead of passing unnoticed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import onnxcc

from onnxcc.runtime.hls import run_testbench

sys.path.insert(0, str(Path(__file__).parent))
from test_hls_int import _residual_cnn  # noqa: E402


def _depths(m) -> dict[str, int]:
    text = (m.lib_dir / "firmware" / f"{m.mmap['c_prefix']}.cpp").read_text()
    return {s: int(d) for s, d in re.findall(r"STREAM variable=(\w+) depth=(\d+)", text)}


def _rejoins(depths: dict[str, int]) -> dict[str, int]:
    """The residual CNN's rejoin FIFOs: k2 (the Add) reads the ReLU r1 (the skip, from k0) and
    Conv c2 (k1); k4 (the Concat) reads the depthwise branch (k3) and the sum (the skip)."""
    return {s: d for s, d in depths.items() if s.endswith(("_k2", "_k4"))}


def test_fan_out_into_one_input_layers_is_shallow_and_does_not_deadlock(tmp_path):
    """The residual CNN: the sum and the first ReLU each feed a one-input Conv (shallow FIFOs)
    and a two-input Add or Concat (rejoin FIFOs sized from the lag of the 3x3 conv on the other
    branch: 2 rows of 6 pixels x 4 channels plus a margin, not the 144-element tensor); the
    concurrent C-simulation with these depths passes the test bench, the same design with the
    skip FIFO one row shallower deadlocks, and with every FIFO 2 deep too."""
    m = onnxcc.compile(_residual_cnn(), "xczu7ev", hls=onnxcc.HLSConfig(io="io_stream"))
    depths = _depths(m)
    # k1 (Conv c2) and k3 (depthwise Conv) read one fan-out stream each; k2 (Add) and k4
    # (Concat) read two streams each
    assert sorted(d for s, d in depths.items() if s.endswith(("_k1", "_k3"))) == [2, 2], depths
    rejoin = _rejoins(depths)
    assert len(rejoin) == 4 and all(2 < d < 144 for d in rejoin.values()), depths
    row = 6 * 4   # one row of a (1, 4, 6, 6) tensor in pixel order
    skips = [s for s in rejoin if s.startswith("st_buf3_") or s.startswith("st_buf4_")]
    skip_add, skip_cat = sorted(skips)   # r1 into the Add, the sum into the Concat
    for skip, conv in ((skip_add, "st_buf1_k2"), (skip_cat, "st_buf2_k4")):
        # the skip side runs 2 rows ahead (the conv reads rows 0-1 before its row 0), plus margin
        assert 2 * row <= rejoin[skip] < 3 * row and row <= rejoin[conv] < rejoin[skip], depths
    out = tmp_path / "prj"
    m.save(out)
    ok, log = run_testbench(out, threads=True, deadlock_seconds=5)
    assert ok and "0 output values differ" in log, log
    # the same build with other depths (ONNXCC_CSIM_DEPTHS, no rebuild)
    ok, log = run_testbench(out, threads=True, deadlock_seconds=2,
                            depths={skip_add: rejoin[skip_add] - row})
    assert not ok and "onnxcc: deadlock:" in log, log
    ok, log = run_testbench(out, threads=True, deadlock_seconds=2, depths={"*": 2})
    assert not ok and "onnxcc: deadlock:" in log and "hls::stream st_" in log, log


def test_integer_design_streams_concurrently(tmp_path):
    """The int8 residual CNN (onnxcc.Int8) in io_stream runs its processes concurrently with
    the computed depths and matches the integer reference in the test bench. Its QLinearAdd
    and QLinearConcat read each input whole before the next: the first input read is 2 deep;
    the Add's second (Conv c2, whose int8 kernel holds whole tensors: it has read all of r1
    before it waits on its output) is 2 deep too; the Concat's second (the sum, whose writer
    also feeds the depthwise branch the Concat reads first) holds the tensor, and made
    shallower deadlocks."""
    r = np.random.default_rng(4)
    cal = {"x": r.uniform(-2, 2, (32, 1, 2, 6, 6)).astype(np.float32)}
    m = onnxcc.compile(_residual_cnn(), "xczu7ev", quantize=onnxcc.Int8(calibration=cal),
                       hls=onnxcc.HLSConfig(io="io_stream"))
    rejoin = _rejoins(_depths(m))
    # k2 reads r1 (buf3) then c2 (buf1); k4 reads the depthwise branch (buf2) then the sum (buf4)
    assert rejoin == {"st_buf3_k2": 2, "st_buf1_k2": 2, "st_buf2_k4": 2, "st_buf4_k4": 144}, \
        rejoin
    out = tmp_path / "prj"
    m.save(out)
    ok, log = run_testbench(out, threads=True, deadlock_seconds=5)
    assert ok and "0 output values differ" in log and "warning" not in log.lower(), log
    ok, log = run_testbench(out, threads=True, deadlock_seconds=2, depths={"st_buf4_k4": 100})
    assert not ok and "onnxcc: deadlock:" in log, log


def test_cnn_with_three_way_fan_out_streams_concurrently(tmp_path):
    """The op-coverage CNN of test_hls_models: c2 feeds AveragePool and MaxPool (shallow) and
    Concat (whole tensor), p1 feeds the Add and the Sub (both two-input: whole tensors); the
    concurrent C-simulation passes its test bench."""
    from test_hls_models import _cnn

    m = onnxcc.compile(_cnn(), "xcvu9p", hls=onnxcc.HLSConfig(io="io_stream"))
    depths = _depths(m)
    assert list(depths.values()).count(216) >= 1 and list(depths.values()).count(2) >= 3, depths
    m.save(tmp_path / "prj")
    ok, log = run_testbench(tmp_path / "prj", threads=True, deadlock_seconds=5)
    assert ok and "0 output values differ" in log, log


def _deep_residual():
    """r1 = Relu(Conv 3x3(x)) on (1, 3, 6, 6); an Add of r1 and a 3x3 -> Relu -> 5x5 conv branch
    (3 rows of line-buffer lag), then a Concat of that sum, a 1x1 conv of r1 and r1 itself."""
    from onnx import TensorProto, helper, numpy_helper

    r = np.random.default_rng(1)
    a = lambda *s: r.normal(0, .3, s).astype(np.float32)   # noqa: E731
    init = [numpy_helper.from_array(v, n) for v, n in [
        (a(3, 2, 3, 3), "w1"), (a(3, 3, 3, 3), "w2"), (a(3, 3, 5, 5), "w3"), (a(3, 3, 1, 1), "w4"),
        (a(2, 324), "fw"), (a(2), "fb")]]
    mk = helper.make_node
    nodes = [mk("Conv", ["x", "w1"], ["c1"], pads=[1] * 4), mk("Relu", ["c1"], ["r1"]),
             mk("Conv", ["r1", "w2"], ["c2"], pads=[1] * 4), mk("Relu", ["c2"], ["r2"]),
             mk("Conv", ["r2", "w3"], ["c3"], pads=[2] * 4), mk("Conv", ["r1", "w4"], ["c4"]),
             mk("Add", ["c3", "r1"], ["s"]), mk("Concat", ["s", "c4", "r1"], ["cc"], axis=1),
             mk("Flatten", ["cc"], ["f"]), mk("Gemm", ["f", "fw", "fb"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "deep", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 2, 6, 6])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 2])], init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def test_rejoin_depth_sums_the_lag_along_the_longer_branch(tmp_path):
    """The skip over a 3x3 and a 5x5 conv (1 + 2 rows of lag) holds 4 rows of r1 (4 x 6 x 3)
    plus the margin, the 1x1 conv and r1 into the Concat as much (the sum's branch lags 3
    rows), the sum itself one row; all below the 108-element tensor. The concurrent
    C-simulation passes; the Add's skip one row shallower deadlocks."""
    m = onnxcc.compile(_deep_residual(), "xczu7ev", hls=onnxcc.HLSConfig(io="io_stream"))
    text = (m.lib_dir / "firmware" / f"{m.mmap['c_prefix']}.cpp").read_text()
    add = re.search(r"static void \w+_(k\d+)\([^)]*\) \{\n    // elementwise", text).group(1)
    cat = re.search(r"static void \w+_(k\d+)\([^)]*\) \{\n    // concat", text).group(1)
    depths = _depths(m)
    into = lambda k: sorted(d for s, d in depths.items() if s.endswith("_" + k))   # noqa: E731
    row = 6 * 3
    assert [d // row for d in into(add)] == [1, 4], depths          # c3 (long), r1 (skip)
    assert [d // row for d in into(cat)] == [1, 4, 4], depths       # s (long), c4, r1
    assert max(into(add) + into(cat)) < 108
    out = tmp_path / "prj"
    m.save(out)
    ok, log = run_testbench(out, threads=True, deadlock_seconds=5)
    assert ok and "0 output values differ" in log, log
    skip = max((s for s in depths if s.endswith("_" + add)), key=depths.get)
    ok, log = run_testbench(out, threads=True, deadlock_seconds=2,
                            depths={skip: depths[skip] - row})
    assert not ok and "onnxcc: deadlock:" in log, log
