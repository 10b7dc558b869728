"""Fit before you build: the MemoryBudgetError names the peak's live tensors, the largest
weights and what would help (int8, a bigger part, a smaller input); `onnxcc check` prints the
fit table. The conv model's numbers are those without patch-based execution (max_recompute=0):
patching its stage would change them (tests/passes/test_patch.py covers that)."""

import subprocess
import sys

import numpy as np
import pytest

import onnxcc
from builders import make_model
from onnxcc.errors import MemoryBudgetError
from onnxcc.fit import fit_report, smallest_mcu
from onnxcc.targets import TARGETS

EVIL = "act\x1b[2J"   # a tensor name with a terminal escape


def _conv_model(hw: int, name: str = "convs"):
    """x [1,8,hw,hw] -> Conv 16 -> Relu -> Conv 8 -> Add x: the 16-channel activation is the peak."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((16, 8, 3, 3)).astype("f4")
    w2 = rng.standard_normal((8, 16, 3, 3)).astype("f4")
    pads = {"pads": [1, 1, 1, 1]}
    return make_model([("Conv", ["x", "w1"], ["a"], pads), ("Relu", ["a"], [EVIL]),
                       ("Conv", [EVIL, "w2"], ["c"], pads), ("Add", ["c", "x"], ["y"])],
                      {"x": (1, 8, hw, hw)}, {"y": (1, 8, hw, hw)}, {"w1": w1, "w2": w2},
                      name=name)


def _mlp_model(k: int, n: int):
    """x [1,k] @ w_big [k,n] -> Relu: weights k*n*4 bytes, a tiny arena."""
    w = np.random.default_rng(1).standard_normal((k, n)).astype("f4")
    return make_model([("MatMul", ["x", "w_big"], ["h"]), ("Relu", ["h"], ["y"])],
                      {"x": (1, k)}, {"y": (1, n)}, {"w_big": w})


def test_arena_over_sram_names_peak_weights_int8_and_bigger_part():
    # the 16-channel activation of 64x64: 16*64*64*4 = 262,144 B > 196,608 B of the M4
    with pytest.raises(MemoryBudgetError) as ei:
        onnxcc.compile(_conv_model(64), "cortex-m4", max_recompute=0)
    msg = str(ei.value)
    assert "the arena needs 262,144 bytes but cortex-m4 has 196,608 bytes of SRAM" in msg
    assert "largest tensors: " + repr(EVIL) in msg
    assert "live at the peak (step 0" in msg and f"262,144 B  {EVIL!r} from node 'n0'" in msg
    assert "largest weights: 'w1' (4,608 B), 'w2' (4,608 B)" in msg
    # int8: weights 2*1152 B, the float arena /4
    assert "int8 quantization" in msg and "weights ~2,304 bytes, arena ~65,536 bytes" in msg
    # the smallest MCU target with >= 256 KiB SRAM (and enough flash)
    want = min((t for t in TARGETS.values() if t.family == "mcu" and t.sram_bytes >= 262_144),
               key=lambda t: (t.sram_bytes, t.flash_bytes))
    assert want.name == "cortex-m33" and "a bigger part: cortex-m33" in msg
    assert "a smaller input: 'x' [1, 8, 64, 64] -> [1, 8, 32, 32]" in msg
    assert "--input-shape x=1,8,32,32" in msg and "~65,536 bytes" in msg
    assert "\x1b" not in msg   # the hostile name is printed with repr()


def test_weights_over_flash_name_largest_weight_and_int8_estimate():
    # 1024*300*4 = 1,228,800 B of weights > 1 MiB flash of the M4; int8: 307,200 B
    with pytest.raises(MemoryBudgetError) as ei:
        onnxcc.compile(_mlp_model(1024, 300), "cortex-m4")
    msg = str(ei.value)
    assert "the weights need 1,228,800 bytes but cortex-m4 has 1,048,576 bytes of flash" in msg
    assert "SRAM" not in msg.splitlines()[0]
    assert "largest weights: 'w_big' (1,228,800 B)" in msg
    assert "weights ~307,200 bytes" in msg and "fits cortex-m4" in msg
    # the smallest part with 2 MiB flash: the RP2040's M0+ (264 KiB SRAM)
    assert smallest_mcu(1, 1_228_800).name == "cortex-m0plus"
    assert "a bigger part: cortex-m0plus (RP2040: 264 KiB SRAM, 2,048 KiB flash)" in msg
    assert "a smaller input" not in msg   # the input does not shrink the weights


def test_fit_report_of_a_model_that_fits():
    from onnxcc.frontend import import_onnx
    from onnxcc.passes import run_pipeline
    from onnxcc.passes.patch import with_max_recompute

    tgt = TARGETS["cortex-m0plus"]
    g = run_pipeline(import_onnx(_conv_model(16)), with_max_recompute(tgt.pipeline, 0))
    r = fit_report(g, tgt)
    plan = g.meta["memory_plan"]
    assert r.fits and not r.helps
    assert r.arena_bytes == plan.arena_size and r.lower_bound == plan.lower_bound
    assert r.weights_bytes == 2 * 4608 and r.sram_bytes == 264 * 1024
    assert r.live_bytes[r.peak_step] == plan.lower_bound == max(r.live_bytes)
    assert sum(t.nbytes for t in r.live_at_peak) == plan.lower_bound
    assert [t.name for t in r.live_at_peak] == [EVIL] and r.live_at_peak[0].nbytes == 16 * 256 * 4


def _run(*args):
    return subprocess.run([sys.executable, "-m", "onnxcc.cli", *args], capture_output=True,
                          text=True)


def test_cli_check_prints_the_fit_table_or_the_budget_error(tmp_path):
    small, big = tmp_path / "small.onnx", tmp_path / "big.onnx"
    small.write_bytes(_conv_model(16).SerializeToString())
    big.write_bytes(_conv_model(64).SerializeToString())
    p = _run("check", str(small), "--target", "cortex-m0plus", "--max-recompute", "0")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "it fits cortex-m0plus (RP2040)" in out
    # arena 16*16*16*4 = 16,384 B of 270,336: 6.1%; weights 9,216 of 2,097,152: 0.4%
    assert "arena / SRAM" in out and "16,384" in out and "270,336" in out and "6.1%" in out
    assert "weights / flash" in out and "9,216" in out and "0.4%" in out
    assert "live at the peak (step 0" in out and repr(EVIL) in out and "\x1b" not in out
    p = _run("check", str(big), "--target", "cortex-m4", "--max-recompute", "0")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    err = p.stderr
    assert err.startswith("error: the arena needs 262,144 bytes") and "bytes of SRAM" in err
    assert "live at the peak" in err and "largest weights: 'w1'" in err
    assert "cortex-m33" in err and "arena ~65,536 bytes" in err and "\x1b" not in err
    p = _run("compile", str(small), "--target", "cortex-m0plus", "-o", str(tmp_path / "lib"),
             "--max-recompute", "0")
    assert p.returncode == 0, p.stderr
    assert "6.1% of 270,336 bytes of SRAM" in p.stdout and "of 2,097,152 bytes of flash" in p.stdout
