import subprocess
import sys

import numpy as np

from builders import make_model
from onnxcc.cli import main


def test_main_job_compiles_runs_and_scores_digits(tmp_path, capsys):
    assert main(["compile", "-o", str(tmp_path / "digits")]) == 0
    out = capsys.readouterr().out
    assert "accuracy, C library" in out and "accuracy, onnxruntime" in out
    assert "cortex-m4 on QEMU" in out
    assert (tmp_path / "digits" / "digits.c").exists()


def test_compile_report_check_targets_ops(tmp_path, capsys):
    m = make_model([("Relu", ["x"], ["y"])], {"x": (1, 4)}, {"y": (1, 4)})
    path = tmp_path / "r.onnx"
    path.write_bytes(m.SerializeToString())
    assert main(["compile", str(path), "-o", str(tmp_path / "lib")]) == 0
    assert (tmp_path / "lib" / "r.h").exists()
    assert main(["report", str(path)]) == 0
    assert "arena" in capsys.readouterr().out
    assert main(["check", str(path)]) == 0
    assert main(["targets"]) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()}
    for core in ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55",
                 "rv32imac"):
        assert "KiB SRAM" in lines[core] and "DSP extension" in lines[core]
    assert "STM32F407" in lines["cortex-m4"] and "no DSP" not in lines["cortex-m4"]
    assert "no DSP extension" in lines["cortex-m3"]
    assert main(["ops"]) == 0
    assert "| Conv | yes | yes |" in capsys.readouterr().out
    np.savez(tmp_path / "x.npz", x=np.array([[-1, 2, -3, 4]], np.float32))
    assert main(["run", str(path), "--inputs", str(tmp_path / "x.npz"), "-o", str(tmp_path / "y.npz")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npz")["y"], [[0, 2, 0, 4]])


def test_user_errors_exit_2_with_one_message(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    p = subprocess.run([sys.executable, "-m", "onnxcc.cli", "check", str(bad)], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("error:") and "Traceback" not in p.stderr
    m = make_model([("Unique", ["x"], ["y"])], {"x": (2, 2)}, {"y": None})
    (tmp_path / "det.onnx").write_bytes(m.SerializeToString())
    p = subprocess.run([sys.executable, "-m", "onnxcc.cli", "check", str(tmp_path / "det.onnx")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "'n0' (Unique)" in p.stderr
    p = subprocess.run([sys.executable, "-m", "onnxcc.cli", "compile", str(tmp_path / "det.onnx"),
                        "--target", "nope"], capture_output=True, text=True)
    assert p.returncode == 2


def test_model_that_does_not_fit_the_mcu_is_refused_by_name(tmp_path, capsys):
    import pytest

    import onnxcc
    from onnxcc.errors import MemoryBudgetError

    with pytest.raises(MemoryBudgetError, match="196,608 bytes of SRAM"):
        onnxcc.compile("zoo:squeezenet", "cortex-m4")
    assert main(["check", "zoo:squeezenet", "--target", "cortex-m4"]) == 2
    assert "largest tensors" in capsys.readouterr().err


def test_input_shape_option_binds_the_batch(tmp_path, capsys):
    from onnxcc.cli import MODELS_DIR

    x = np.load(MODELS_DIR / "digits_test.npz")["x"][:3]
    np.savez(tmp_path / "x.npz", input=x)
    assert main(["run", str(MODELS_DIR / "digits.onnx"), "--input-shape", "input=3,1,8,8",
                 "--inputs", str(tmp_path / "x.npz"), "-o", str(tmp_path / "y.npz")]) == 0
    assert np.load(tmp_path / "y.npz")["probabilities"].shape == (3, 10)
    assert main(["check", str(MODELS_DIR / "digits.onnx"), "--input-shape", "input=3,1,x"]) == 2
    assert "NAME=1,3,224,224" in capsys.readouterr().err


def test_cpu_target_from_the_cli_and_loop_ir_dump(tmp_path, capsys):
    """--target cpu writes the object beside the header; --dump-ir loops prints the loop-IR
    program after the target's loop passes; check and targets know the LLVM targets."""
    m = make_model([("Relu", ["x"], ["y"])], {"x": (1, 4)}, {"y": (1, 4)})
    path = tmp_path / "r.onnx"
    path.write_bytes(m.SerializeToString())
    assert main(["compile", str(path), "--target", "cpu", "-o", str(tmp_path / "lib"),
                 "--dump-ir", "loops"]) == 0
    out = capsys.readouterr().out
    assert "program r arena=" in out and "kernel k0(out y0:f32[4] @output0, in x0:f32[4] @input0)" in out
    assert (tmp_path / "lib" / "r.o").exists() and (tmp_path / "lib" / "r.h").exists()
    assert not (tmp_path / "lib" / "r_weights.c").exists()
    assert main(["check", str(path), "--target", "aarch64"]) == 0
    assert "every node can be compiled for aarch64" in capsys.readouterr().out
    assert main(["targets"]) == 0
    assert "\ncpu            LLVM back end" in capsys.readouterr().out
