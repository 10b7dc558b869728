"""`onnxcc compile/report --quantize int8 --calibration ...` on the shipped digits CNN."""

from pathlib import Path

import numpy as np

from onnxcc.cli import main

DIGITS = Path(__file__).resolve().parents[1] / "compiler" / "models" / "digits.onnx"
SHAPE = ["--input-shape", "input=1,1,8,8"]


def _calibration(tmp_path: Path) -> Path:
    with np.load(DIGITS.with_name("digits_test.npz")) as z:
        x = z["x"][:60].astype(np.float32)
    np.savez(tmp_path / "cal.npz", input=x)
    return tmp_path / "cal.npz"


def test_compile_and_report_int8(tmp_path, capsys):
    cal = str(_calibration(tmp_path))
    assert main(["compile", str(DIGITS), *SHAPE, "--quantize", "int8", "--calibration", cal,
                 "-o", str(tmp_path / "q")]) == 0
    out = capsys.readouterr().out
    assert "arena:   640 bytes" in out
    # every shift >= 32 here: the renderer calls the narrow form (codegen/c/render.py)
    text = (tmp_path / "q" / "digits.c").read_text()
    assert text.count("onnxcc_requantize_narrow(") >= 4 and "onnxcc_requantize(" not in text
    assert main(["report", str(DIGITS), *SHAPE, "--quantize", "int8", "--calibration", cal,
                 "--calibration-method", "entropy", "--per-tensor"]) == 0
    out = capsys.readouterr().out
    assert "int8 quantization: entropy, 60 calibration samples" in out and "SQNR dB" in out
    assert "QLinearConv" in out


def test_quantize_flags_need_each_other(tmp_path, capsys):
    assert main(["compile", str(DIGITS), "--quantize", "int8", "-o", str(tmp_path / "a")]) == 2
    assert "needs calibration inputs" in capsys.readouterr().err
    cal = str(_calibration(tmp_path))
    assert main(["compile", str(DIGITS), "--calibration", cal, "-o", str(tmp_path / "b")]) == 2
    assert "--calibration is given without --quantize" in capsys.readouterr().err
    assert main(["compile", str(DIGITS), *SHAPE, "--quantize", "int8", "--calibration",
                 str(tmp_path / "none.npz"), "-o", str(tmp_path / "c")]) == 2
    assert "no calibration file or folder" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_compile_and_report_int16x8(tmp_path, capsys):
    """--quantize int16x8: int16 activations (int16_t tensors in the C), int8 weights;
    --int16-layer names the layers that get int16 under --quantize int8."""
    with np.load(DIGITS.with_name("digits_test.npz")) as z:
        np.savez(tmp_path / "cal.npz", input=z["x"][:10].astype(np.float32))
    cal = str(tmp_path / "cal.npz")
    assert main(["compile", str(DIGITS), *SHAPE, "--quantize", "int16x8", "--calibration", cal,
                 "-o", str(tmp_path / "q")]) == 0
    text = (tmp_path / "q" / "digits.c").read_text()
    assert "const int16_t" in text or "int16_t *" in text
    assert main(["report", str(DIGITS), *SHAPE, "--quantize", "int8", "--calibration", cal,
                 "--int16-layer", "fc1"]) == 0
    out = capsys.readouterr().out
    assert "int8 + int16x8 quantization: minmax, 10 calibration samples" in out
    assert main(["report", str(DIGITS), *SHAPE, "--quantize", "int8", "--calibration", cal,
                 "--int16-layer", "fc9"]) == 2
    assert "int16_layers names ['fc9']" in capsys.readouterr().err
    assert main(["report", str(DIGITS), *SHAPE, "--int16-layer", "fc1"]) == 2
    assert "--int16-layer is given without --quantize int8" in capsys.readouterr().err
