"""Every MCU target built for and run on its emulated core (QEMU, runtime/qemu.py), against
onnxruntime (float) and the host build (int8): a small CNN, a float MLP and the CNN quantized
by onnxcc.Int8."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxcc
import pytest
from builders import make_model, ort_run
from onnxcc.errors import BuildError
from onnxcc.runtime import qemu
from onnxcc.targets import get_target, load_target_file

MODELS = Path(__file__).resolve().parents[2] / "compiler" / "models"
CORES = ["cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55",
         "rv32imac"]


def _tools_or_skip(name: str) -> qemu.Machine:
    """The board of target ``name``; skips the test when its compiler or QEMU is missing."""
    mc = qemu.machine_for(get_target(name))
    arch = qemu.ARCHES[mc.arch]
    for tool, pkg in ((get_target(name).cc, arch.cc_packages), (arch.qemu, arch.qemu_package)):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install {pkg}; "
                        "scripts/install-test-deps.sh does it as root)")
    return mc


def _close(out: np.ndarray, ref: np.ndarray) -> None:
    """Max abs error within 1e-5 of the reference's magnitude (at least 1)."""
    assert out.dtype == ref.dtype and out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-5 * max(1.0, float(np.abs(ref).max()))


@pytest.fixture(scope="module")
def cnn():
    """Conv 3x3 + Relu + MaxPool 2x2 + Gemm: x (1,2,8,8) -> y (1,10)."""
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((4, 2, 3, 3)).astype(np.float32) * 0.5,
             "b": rng.standard_normal(4).astype(np.float32) * 0.1,
             "s": np.array([1, 64], np.int64),
             "g": rng.standard_normal((10, 64)).astype(np.float32) * 0.2,
             "gb": rng.standard_normal(10).astype(np.float32) * 0.1}
    model = make_model(
        [("Conv", ["x", "w", "b"], ["c"], {"pads": [1, 1, 1, 1]}),
         ("Relu", ["c"], ["r"]),
         ("MaxPool", ["r"], ["p"], {"kernel_shape": [2, 2], "strides": [2, 2]}),
         ("Reshape", ["p", "s"], ["f"]),
         ("Gemm", ["f", "g", "gb"], ["y"], {"transB": 1})],
        {"x": (1, 2, 8, 8)}, {"y": (1, 10)}, inits, name="cnn")
    xs = rng.standard_normal((40, 2, 8, 8)).astype(np.float32)
    return model, xs


@pytest.fixture(scope="module")
def mlp():
    """Gemm + Relu + Gemm + Softmax: x (1,16) -> y (1,5)."""
    rng = np.random.default_rng(1)
    inits = {"w1": rng.standard_normal((16, 24)).astype(np.float32) * 0.3,
             "b1": rng.standard_normal(24).astype(np.float32) * 0.1,
             "w2": rng.standard_normal((24, 5)).astype(np.float32) * 0.3,
             "b2": rng.standard_normal(5).astype(np.float32) * 0.1}
    model = make_model(
        [("Gemm", ["x", "w1", "b1"], ["h"]), ("Relu", ["h"], ["r"]),
         ("Gemm", ["r", "w2", "b2"], ["z"]), ("Softmax", ["z"], ["y"], {"axis": 1})],
        {"x": (1, 16)}, {"y": (1, 5)}, inits, name="mlp")
    return model, rng.standard_normal((2, 1, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def int8_host(cnn):
    """The CNN quantized by onnxcc.Int8 on 32 samples, built for the host: the expected bytes."""
    model, xs = cnn
    q = onnxcc.Int8(calibration={"x": xs[:32]})
    return q, onnxcc.compile(model, "host", quantize=q, name="cnnq")


@pytest.mark.parametrize("target", CORES)
def test_float_cnn_on_core(cnn, target, tmp_path):
    mc = _tools_or_skip(target)
    model, xs = cnn
    cm = onnxcc.compile(model, target)
    for x in (xs[32:33], xs[33:34]):
        _close(qemu.run_on_qemu(cm, {"x": x})["y"], ort_run(model, {"x": x})["y"])
    # The firmware follows the board's memory map: vectors (or reset code) first in its flash,
    # the arena in its RAM.
    fw = qemu.firmware(cm)
    assert fw.machine is mc
    elf = fw.link({"x": xs[:1]}, tmp_path)
    nm = subprocess.run([fw.cc.replace("gcc", "nm"), str(elf)], capture_output=True, text=True,
                        check=True)
    syms = {p[2]: int(p[0], 16) for p in (ln.split() for ln in nm.stdout.splitlines())
            if len(p) == 3}
    (fo, _), (ro, rl) = mc.flash, mc.ram
    first = "onnxcc_vectors" if mc.arch == "cortex-m" else "Reset_Handler"
    assert syms[first] == fo and ro <= syms["arena"] < ro + rl
    assert syms["arena"] % cm.mmap["arena"]["alignment"] == 0


@pytest.mark.parametrize("target", CORES)
def test_float_mlp_on_core(mlp, target):
    _tools_or_skip(target)
    model, xs = mlp
    cm = onnxcc.compile(model, target)
    for x in xs:
        _close(qemu.run_on_qemu(cm, {"x": x})["y"], ort_run(model, {"x": x})["y"])


@pytest.mark.parametrize("target", CORES)
def test_int8_cnn_on_core_equals_host_bytes(cnn, int8_host, target):
    _tools_or_skip(target)
    (model, xs), (q, host) = cnn, int8_host
    cm = onnxcc.compile(model, target, quantize=q, name="cnnq")
    assert "QLinearConv" in [n.op for n in cm.graph.nodes]
    for x in (xs[34:35], xs[35:36]):
        got, want = qemu.run_on_qemu(cm, {"x": x})["y"], host.run({"x": x})["y"]
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


@pytest.mark.parametrize("target", [t for t in CORES if t.startswith("cortex-m")])
def test_dsp_flag_matches_the_compiler(target):
    """Target.dsp is what arm-none-eabi-gcc says of the target's flags (__ARM_FEATURE_DSP)."""
    t = get_target(target)
    if shutil.which(t.cc) is None:
        pytest.skip(f"{t.cc} not installed (apt-get install gcc-arm-none-eabi)")
    macros = subprocess.run([t.cc, *t.c_flags, "-dM", "-E", "-"], input="", capture_output=True,
                            text=True, check=True).stdout
    assert ("__ARM_FEATURE_DSP 1" in macros) is t.dsp
    assert ("__ARM_FP " in macros) is ("-mfloat-abi=hard" in t.c_flags)
    assert ("__ARM_FEATURE_MVE" in macros) is (target == "cortex-m55")


def test_each_core_has_its_own_board():
    boards = {t: qemu.machine_for(get_target(t)) for t in CORES}
    assert {t: b.name for t, b in boards.items()} == {
        "cortex-m0plus": "microbit", "cortex-m3": "mps2-an385", "cortex-m4": "mps2-an386",
        "cortex-m7": "mps2-an500", "cortex-m33": "mps2-an505", "cortex-m55": "mps3-an547",
        "rv32imac": "virt"}
    assert "ORIGIN = 0x10000000" in boards["cortex-m33"].memory_script()
    assert qemu.machine_for(get_target("host")).name == "mps2-an386"


def test_missing_riscv_tools_name_the_debian_packages(monkeypatch):
    monkeypatch.setattr(qemu.shutil, "which", lambda c: None)
    with pytest.raises(BuildError) as e:
        qemu.find_tools(arch="riscv")
    assert "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf" in str(e.value)
    monkeypatch.setattr(qemu.shutil, "which", lambda c: c if "gcc" in c else None)
    with pytest.raises(BuildError, match="qemu-system-misc"):
        qemu.find_tools(arch="riscv")


def test_unknown_cpu_and_board_are_refused():
    t = get_target("cortex-m4").__class__(name="m85", family="mcu", triple="thumbv8.1m.main",
                                          cpu="cortex-m85")
    with pytest.raises(BuildError, match="no emulated board for cpu 'cortex-m85'"):
        qemu.machine_for(t)
    with pytest.raises(BuildError, match="known: microbit"):
        qemu.get_machine("stm32")


@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m33", "cortex-m55", "rv32imac"])
def test_a_trap_on_the_core_is_reported_as_a_fault(mlp, target, tmp_path):
    """__builtin_trap (UDF on Arm, ebreak on RISC-V) reaches the startup's fault handler, which
    exits QEMU with 0xFE; run_elf names it."""
    _tools_or_skip(target)
    cm = onnxcc.compile(mlp[0], target)   # keeps its folder, where the firmware is built
    fw = qemu.firmware(cm)
    main = tmp_path / "bad_main.c"
    main.write_text("int main(void);\nint main(void)\n{\n    __builtin_trap();\n    return 0;\n}\n")
    elf = fw.link_objects([fw._compile(main, tmp_path / "bad_main.o"), *fw.runtime_objects],
                          tmp_path / "bad.elf")
    with pytest.raises(BuildError, match="exited with 254: the core took a fault"):
        fw.run_elf(elf, timeout=20)


def test_a_board_file_runs_on_its_bases_core(mlp, tmp_path):
    """A --target-file board keeps its base's cpu, so it runs on that core's emulated board."""
    _tools_or_skip("cortex-m0plus")
    board = tmp_path / "samd21.toml"
    board.write_text('base = "cortex-m0plus"\nname = "samd21"\nboard = "ATSAMD21G18"\n'
                     'sram_bytes = 32768\nflash_bytes = 262144\nclock_hz = 48000000\n')
    model, xs = mlp
    cm = onnxcc.compile(model, load_target_file(board))
    assert qemu.firmware(cm).machine.name == "microbit"
    _close(qemu.run_on_qemu(cm, {"x": xs[0]})["y"], ort_run(model, {"x": xs[0]})["y"])


@pytest.mark.slow
@pytest.mark.parametrize("target", CORES)
def test_digits_on_core(target):
    """The bundled digits CNN (two Conv+Relu+MaxPool, two Gemm) on every core, within 1e-5 of
    onnxruntime; the cortex-m55 build runs Helium (MVE) vector code on its emulated core."""
    _tools_or_skip(target)
    model = onnx.load(str(MODELS / "digits.onnx"))
    cm = onnxcc.compile(model, target, input_shapes={"input": (1, 1, 8, 8)}, name="digits")
    with np.load(MODELS / "digits_test.npz", allow_pickle=False) as z:
        x = z["x"][:2]
    for xi in (x[:1], x[1:2]):
        _close(qemu.run_on_qemu(cm, {"input": xi})["probabilities"],
               ort_run(model, {"input": xi})["probabilities"])
    if target == "cortex-m55":
        fw = qemu.firmware(cm)
        dis = subprocess.run([fw.cc.replace("gcc", "objdump"), "-d", str(fw.objects[0])],
                             capture_output=True, text=True, check=True).stdout
        assert re.search(r"\tv(mul|add|fma)\.f32\tq[0-7], q[0-7]", dis)   # MVE float on q registers


def test_weights_past_the_m55_itcm_run_from_its_sram(tmp_path):
    """The AN547 board boots from its 512 KiB ITCM; the firmware puts the constants in its
    2 MiB SRAM (``Machine.const``), so a model whose weights outgrow the ITCM (a MatMul of
    625 KiB of float32 weights, on a cortex-m55 whose flash is the board's) runs, its weights
    linked there, within float tolerance of numpy."""
    import dataclasses

    mc = _tools_or_skip("cortex-m55")
    assert mc.const is not None and mc.rom_bytes == mc.flash[1] + mc.const[1]
    r = np.random.default_rng(0)
    w = r.standard_normal((400, 400)).astype(np.float32)
    model = make_model([("MatMul", ["x", "w"], ["y"])], {"x": [1, 400]}, {"y": [1, 400]},
                       {"w": w})
    tgt = dataclasses.replace(get_target("cortex-m55"), flash_bytes=mc.rom_bytes)
    cm = onnxcc.compile(model, tgt, name="big")
    x = r.standard_normal((1, 400)).astype(np.float32)
    _close(qemu.run_on_qemu(cm, {"x": x})["y"], (x.astype(np.float64) @ w).astype(np.float32))
    fw = qemu.firmware(cm)
    nm = subprocess.run([fw.cc.replace("gcc", "nm"), "-S", str(fw.link({"x": x}, tmp_path))],
                        capture_output=True, text=True, check=True)
    big = [p for p in (ln.split() for ln in nm.stdout.splitlines())
           if len(p) == 4 and int(p[1], 16) >= w.nbytes]
    (co, cl), (fo, fl) = mc.const, mc.flash
    assert big and all(co <= int(p[0], 16) < co + cl for p in big)
    assert int(big[0][0], 16) + int(big[0][1], 16) > fo + fl    # past the ITCM's size
