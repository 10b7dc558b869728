"""The cortex-m4 library run as firmware on an emulated Cortex-M4 (QEMU mps2-an386), against
onnxruntime."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxcc
import pytest
from builders import make_model, ort_run
from onnxcc.errors import BuildError, ShapeError
from onnxcc.runtime import qemu

MODELS = Path(__file__).resolve().parents[1] / "compiler" / "models"

needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs qemu-system-arm and arm-none-eabi-gcc (apt-get install qemu-system-arm "
    "gcc-arm-none-eabi libnewlib-arm-none-eabi)")
pytestmark = [pytest.mark.slow, needs_qemu]


@pytest.fixture(scope="module")
def digits():
    model = onnx.load(str(MODELS / "digits.onnx"))
    cm = onnxcc.compile(model, "cortex-m4", input_shapes={"input": (1, 1, 8, 8)}, name="digits")
    with np.load(MODELS / "digits_test.npz", allow_pickle=False) as z:
        x, y = z["x"], z["y"]
    return model, cm, x, y


def test_digits_on_qemu_matches_onnxruntime(digits):
    model, cm, x, y = digits
    picks = [0, 1, 2, 3, 4, 57, 123, 449]
    got, want = [], []
    for i in picks:
        xi = x[i:i + 1]
        out = qemu.run_on_qemu(cm, {"input": xi})
        ref = ort_run(model, {"input": xi})
        assert set(out) == {"probabilities"}
        assert out["probabilities"].dtype == np.float32 and out["probabilities"].shape == (1, 10)
        np.testing.assert_allclose(out["probabilities"], ref["probabilities"], rtol=1e-4, atol=1e-5)
        got.append(int(out["probabilities"].argmax()))
        want.append(int(ref["probabilities"].argmax()))
    assert got == want
    assert np.mean(np.array(got) == y[picks]) >= 0.75   # the model is ~97% accurate
    fw = qemu.firmware(cm)
    assert fw.timings["qemu_s"] < 10 and fw.timings["link_s"] < 10   # typically ~0.05 s each


def test_digits_firmware_layout(digits, tmp_path):
    """The arena is a static buffer aligned to DIGITS_ARENA_ALIGN in the board's RAM; the vector
    table sits at address 0 and the weights stay in flash."""
    _, cm, x, _ = digits
    fw = qemu.firmware(cm)
    elf = fw.link({"input": x[:1]}, tmp_path)
    nm = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True)
    syms = {p[2]: (int(p[0], 16), p[1]) for p in (ln.split() for ln in nm.stdout.splitlines())
            if len(p) == 3}
    arena, _ = syms["arena"]
    assert 0x20000000 <= arena < 0x20400000
    assert arena % cm.mmap["arena"]["alignment"] == 0
    assert syms["onnxcc_vectors"][0] == 0
    assert all(addr < 0x00400000 for s, (addr, _) in syms.items() if s.startswith("digits_w"))


def test_conv_softmax_on_qemu(rng):
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    model = make_model(
        [("Conv", ["x", "w", "b"], ["c"], {"pads": [1, 1, 1, 1], "strides": [1, 1]}),
         ("Softmax", ["c"], ["y"], {"axis": 1})],
        {"x": (1, 3, 6, 5)}, {"y": (1, 4, 6, 5), "c": (1, 4, 6, 5)}, {"w": w, "b": b}, name="cs")
    cm = onnxcc.compile(model, "cortex-m4")
    x = rng.standard_normal((1, 3, 6, 5)).astype(np.float32) * 3
    out = qemu.run_on_qemu(cm, {"x": x})
    ref = ort_run(model, {"x": x})
    assert set(out) == {"y", "c"}
    for k in ("y", "c"):
        np.testing.assert_allclose(out[k], ref[k], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(out["y"].argmax(1), ref["y"].argmax(1))


def test_input_literals_are_exact(digits, tmp_path):
    _, cm, _, _ = digits
    x = np.array([0.1, -0.0, 1e-40, np.inf, -np.inf, np.nan, 3.4e38, 1 / 3] * 8,
                 np.float32).reshape(1, 1, 8, 8)
    text = qemu.write_inputs(tmp_path / "in.c", cm.mmap, {"input": x}).read_text()
    assert "__builtin_inff()" in text and "__builtin_nanf(\"\")" in text
    for v in (0.1, 1e-40, 1 / 3):
        assert float.hex(float(np.float32(v))) + "f" in text


def test_bad_feeds_raise_shape_error(digits):
    _, cm, _, _ = digits
    with pytest.raises(ShapeError, match="missing input"):
        qemu.run_on_qemu(cm, {})
    with pytest.raises(ShapeError, match="shape"):
        qemu.run_on_qemu(cm, {"input": np.zeros((1, 64), np.float32)})


def test_missing_tools_name_the_debian_package(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(qemu.shutil, "which", lambda c: None if c == "qemu-system-arm" else real(c))
    with pytest.raises(BuildError, match="qemu-system-arm") as e:
        qemu.find_tools()
    assert "apt-get install qemu-system-arm" in str(e.value)
    monkeypatch.setattr(qemu.shutil, "which", lambda c: None)
    with pytest.raises(BuildError) as e:
        qemu.find_tools()
    assert "gcc-arm-none-eabi" in str(e.value)


@pytest.mark.parametrize("body,timeout,match", [
    ("__builtin_trap();", 20, "fault"),                       # UDF: escalates to HardFault
    ("volatile int k = 1; while (k) { }", 1, "timed out"),
    ("return 7;", 20, "exited with 7"),
])
def test_failed_runs_raise_build_error(digits, tmp_path, body, timeout, match):
    _, cm, _, _ = digits
    fw = qemu.firmware(cm)
    main = tmp_path / "bad_main.c"
    main.write_text("int main(void);\nint main(void)\n{\n    " + body + "\n    return 0;\n}\n")
    objs = [fw._compile(main, tmp_path / "bad_main.o"), *fw.runtime_objects]
    elf = fw.link_objects(objs, tmp_path / "bad.elf")
    with pytest.raises(BuildError, match=match):
        fw.run_elf(elf, timeout=timeout)
