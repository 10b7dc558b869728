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


def test_fan_out_into_one_input_layers_is_shallow_and_does_not_deadlock(tmp_path):
    """The residual CNN: the sum and the first ReLU each feed a one-input Conv (shallow FIFOs)
    and a two-input Add or Concat (whole-tensor FIFOs); the concurrent C-simulation with these
    depths passes the test bench, and the same design with every FIFO 2 deep deadlocks."""
    m = onnxcc.compile(_residual_cnn(), "xczu7ev", hls=onnxcc.HLSConfig(io="io_stream"))
    depths = _depths(m)
    # k1 (Conv c2) and k3 (depthwise Conv) read one fan-out stream each; k2 (Add) and k4
    # (Concat) read two streams each
    assert sorted(d for s, d in depths.items() if s.endswith(("_k1", "_k3"))) == [2, 2], depths
    assert sorted(d for s, d in depths.items() if s.endswith(("_k2", "_k4"))) == [144] * 4
    out = tmp_path / "prj"
    m.save(out)
    ok, log = run_testbench(out, threads=True, deadlock_seconds=5)
    assert ok and "0 output values differ" in log, log
    cpp = out / "firmware" / f"{m.mmap['c_prefix']}.cpp"
    cpp.write_text(re.sub(r"ONNXCC_STREAM_DEPTH\((\w+), \d+\)", r"ONNXCC_STREAM_DEPTH(\1, 2)",
                          cpp.read_text()))
    ok, log = run_testbench(out, threads=True, deadlock_seconds=2)
    assert not ok and "onnxcc: deadlock:" in log and "hls::stream st_" in log, log


def test_integer_design_streams_concurrently(tmp_path):
    """The int8 residual CNN (onnxcc.Int8) in io_stream runs its processes concurrently with
    the computed depths and matches the integer reference in the test bench."""
    r = np.random.default_rng(4)
    cal = {"x": r.uniform(-2, 2, (32, 1, 2, 6, 6)).astype(np.float32)}
    m = onnxcc.compile(_residual_cnn(), "xczu7ev", quantize=onnxcc.Int8(calibration=cal),
                       hls=onnxcc.HLSConfig(io="io_stream"))
    assert 2 in _depths(m).values()
    m.save(tmp_path / "prj")
    ok, log = run_testbench(tmp_path / "prj", threads=True, deadlock_seconds=5)
    assert ok and "0 output values differ" in log and "warning" not in log.lower(), log


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
