"""Target ``thumbv7em``: a Cortex-M4 through the LLVM back end. Its object ``<m>.o`` passes floats
in VFP registers (hard float, Tag_ABI_VFP_args), so arm-none-eabi-gcc links it with hard-float C
(the QEMU harness, newlib's libm) and it runs on QEMU's mps2-an386 against onnxruntime."""

from __future__ import annotations

import shutil
import subprocess

import llvmlite.binding as llvm
import numpy as np
import onnxcc
import pytest
from builders import make_model, ort_run
from onnxcc.cli import main
from onnxcc.codegen.llvm.jit import (TAG_ABI_VFP_ARGS, arm_attributes, check_float_abi,
                                     llvm_triple)
from onnxcc.errors import OnnxccError
from onnxcc.runtime import qemu
from onnxcc.targets import get_target

GCC, READELF = "arm-none-eabi-gcc", "arm-none-eabi-readelf"
HARD = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")


def _tools_or_skip() -> None:
    for tool, pkg in ((GCC, "gcc-arm-none-eabi libnewlib-arm-none-eabi"),
                      (READELF, "binutils-arm-none-eabi"), ("qemu-system-arm", "qemu-system-arm")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install {pkg})")


def _readelf_a(path) -> str:
    return subprocess.run([READELF, "-A", str(path)], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def libm_model():
    """Conv 3x3 + Sigmoid (inline exp) + Log, Atan, Sin (logf, atanf, sinf: a float argument
    and result each) + Gemm + Tanh (inline) + Softmax (inline exp): x (1,2,8,8) -> y (1,6); and
    Round(3x) (rintf) -> r (1,2,8,8)."""
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((4, 2, 3, 3)).astype(np.float32) * 0.5,
             "b": rng.standard_normal(4).astype(np.float32) * 0.1,
             "s": np.array([1, 144], np.int64),
             "g": rng.standard_normal((6, 144)).astype(np.float32) * 0.2,
             "three": np.array(3.0, np.float32)}
    model = make_model(
        [("Conv", ["x", "w", "b"], ["c"]), ("Sigmoid", ["c"], ["sg"]), ("Log", ["sg"], ["l"]),
         ("Atan", ["l"], ["a"]), ("Sin", ["a"], ["sn"]), ("Reshape", ["sn", "s"], ["f"]),
         ("Gemm", ["f", "g"], ["z"], {"transB": 1}), ("Tanh", ["z"], ["t"]),
         ("Softmax", ["t"], ["y"], {"axis": 1}),
         ("Mul", ["x", "three"], ["x3"]), ("Round", ["x3"], ["r"])],
        {"x": (1, 2, 8, 8)}, {"y": (1, 6), "r": (1, 2, 8, 8)}, inits, name="thumb")
    return model, rng.standard_normal((2, 1, 2, 8, 8)).astype(np.float32)


def test_thumbv7em_is_the_cortex_m4_through_llvm(capsys):
    t, m4 = get_target("thumbv7em"), get_target("cortex-m4")
    assert (t.backend, t.triple, t.cpu, t.family, t.pointer_bits) == (
        "llvm", "thumbv7em-none-eabihf", "cortex-m4", "mcu", 32)
    assert (t.sram_bytes, t.flash_bytes, t.clock_hz, t.c_flags, t.cc, t.dsp, t.board) == (
        m4.sram_bytes, m4.flash_bytes, m4.clock_hz, m4.c_flags, m4.cc, m4.dsp, m4.board)
    assert t.c_flags == HARD and qemu.machine_for(t).name == "mps2-an386"
    assert main(["targets"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.split()[0] == "thumbv7em")
    assert "LLVM back end, thumbv7em-none-eabihf, cortex-m4, 32-bit, STM32F407" in line


def test_triples_reach_llvm_in_four_parts():
    """LLVM's TargetMachine reads a triple by position: the short GNU form would put ``eabihf``
    in the OS field, and LLVM would then not know the float ABI is hard."""
    assert llvm_triple("thumbv7em-none-eabihf") == "thumbv7em-unknown-none-eabihf"
    assert llvm_triple("x86_64-linux-gnu") == "x86_64-unknown-linux-gnu"
    for same in ("thumbv7em-unknown-none-eabihf", "aarch64-unknown-linux-gnu",
                 "riscv32-unknown-elf", "x86_64-apple-darwin"):
        assert llvm_triple(same) == same


def test_the_short_triple_read_by_position_gives_a_soft_float_object_ld_refuses(tmp_path):
    """What went wrong before: ``thumbv7em-none-eabihf`` given to LLVM as it is makes an object
    that passes floats in core registers and has no Tag_ABI_VFP_args; check_float_abi refuses
    it, and GNU ld refuses to link it with hard-float C. Through llvm_triple the same IR passes
    ``expf``'s argument in s0 and links."""
    if shutil.which(GCC) is None:
        pytest.skip(f"{GCC} not installed (apt-get install gcc-arm-none-eabi)")
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    ir_text = ("declare float @expf(float)\n"
               "define float @twice_exp(float %x) {\n  %y = fmul float %x, 2.0\n"
               "  %z = call float @expf(float %y)\n  ret float %z\n}\n")
    main_c = tmp_path / "main.c"
    main_c.write_text("float twice_exp(float);\nfloat v;\n"
                      "int main(void) { v = twice_exp(v); return 0; }\n")
    for triple, hard in (("thumbv7em-none-eabihf", False),
                         (llvm_triple("thumbv7em-none-eabihf"), True)):
        tm = llvm.Target.from_triple(triple).create_target_machine(
            cpu="cortex-m4", opt=2, reloc="static", codemodel="default")
        mod = llvm.parse_assembly(ir_text)
        mod.triple = triple
        obj = tm.emit_object(mod)
        assert (arm_attributes(obj).get(TAG_ABI_VFP_ARGS) == 1) is hard
        assert ("vmov\tr0, s0" in tm.emit_assembly(mod)) is not hard   # soft: x to r0 for expf
        path = tmp_path / f"twice_{int(hard)}.o"
        path.write_bytes(obj)
        link = subprocess.run([GCC, *HARD, "--specs=nosys.specs", str(main_c), str(path), "-lm",
                               "-o", str(tmp_path / f"a{int(hard)}.elf")],
                              capture_output=True, text=True)
        if hard:
            assert link.returncode == 0, link.stderr
            check_float_abi(obj, triple)
        else:
            assert link.returncode != 0 and "VFP register arguments" in link.stderr
            with pytest.raises(OnnxccError, match="does not pass floats in VFP registers"):
                check_float_abi(obj, "thumbv7em-none-eabihf")


def test_libm_model_on_the_cortex_m4_matches_onnxruntime(libm_model, tmp_path):
    _tools_or_skip()
    model, xs = libm_model
    cm = onnxcc.compile(model, "thumbv7em")
    names = sorted(p.name for p in cm.lib_dir.iterdir() if p.is_file())
    assert {"thumb.o", "thumb.h", "thumb.c"} <= set(names) and "thumb_weights.c" not in names
    obj = cm.lib_dir / "thumb.o"
    attrs = _readelf_a(obj)
    assert "Tag_ABI_VFP_args: VFP registers" in attrs and 'Tag_CPU_name: "cortex-m4"' in attrs
    assert "Tag_FP_arch: VFPv4-D16" in attrs
    assert arm_attributes(obj.read_bytes())[TAG_ABI_VFP_ARGS] == 1
    undef = set(subprocess.run([GCC.replace("gcc", "nm"), "-u", str(obj)], capture_output=True,
                               text=True, check=True).stdout.split()) - {"U"}
    assert {"logf", "atanf", "sinf", "rintf"} <= undef and "roundevenf" not in undef
    # the harness, startup and newlib are hard-float C: ld accepts the object among them
    fw = qemu.firmware(cm)
    assert fw.machine.name == "mps2-an386" and obj in [*fw.objects]
    assert "Tag_ABI_VFP_args: VFP registers" in _readelf_a(fw.link({"x": xs[0]}, tmp_path))
    for x in xs:
        got, want = qemu.run_on_qemu(cm, {"x": x}), ort_run(model, {"x": x})
        np.testing.assert_allclose(got["y"], want["y"], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got["r"], want["r"])
    # run() compiles the same loop IR for this machine
    np.testing.assert_allclose(cm.run({"x": xs[-1]})["y"], want["y"], rtol=1e-5, atol=1e-6)


def test_thumbv7em_is_held_to_the_cortex_m4_budget():
    """The SRAM of the Cortex-M4's board (192 KiB) bounds the arena as for cortex-m4: a
    256 KiB intermediate does not fit either; the host takes it."""
    from onnxcc.errors import MemoryBudgetError

    w = np.full((32, 1, 1, 1), 0.5, np.float32)
    big = make_model([("Conv", ["x", "w"], ["c"]), ("GlobalAveragePool", ["c"], ["y"])],
                     {"x": (1, 1, 32, 64)}, {"y": (1, 32, 1, 1)}, {"w": w})
    for target in ("cortex-m4", "thumbv7em"):
        with pytest.raises(MemoryBudgetError, match="SRAM"):
            onnxcc.compile(big, target, max_recompute=0)
    assert onnxcc.compile(big, "host").mmap["arena"]["size"] >= 32 * 32 * 64 * 4



def test_int8_cnn_on_the_cortex_m4_equals_the_host_bytes():
    """Integer kernels (QLinearConv's requantization in 64-bit arithmetic, the int8 Gemm) through
    LLVM on the M4 give the bytes of the host's C build."""
    _tools_or_skip()
    rng = np.random.default_rng(2)
    inits = {"w": rng.standard_normal((4, 2, 3, 3)).astype(np.float32) * 0.5,
             "b": rng.standard_normal(4).astype(np.float32) * 0.1,
             "s": np.array([1, 64], np.int64),
             "g": rng.standard_normal((10, 64)).astype(np.float32) * 0.2}
    model = make_model(
        [("Conv", ["x", "w", "b"], ["c"], {"pads": [1, 1, 1, 1]}), ("Relu", ["c"], ["r"]),
         ("MaxPool", ["r"], ["p"], {"kernel_shape": [2, 2], "strides": [2, 2]}),
         ("Reshape", ["p", "s"], ["f"]), ("Gemm", ["f", "g"], ["y"], {"transB": 1})],
        {"x": (1, 2, 8, 8)}, {"y": (1, 10)}, inits, name="cnnq")
    xs = rng.standard_normal((34, 1, 2, 8, 8)).astype(np.float32)
    q = onnxcc.Int8(calibration={"x": xs[:32, 0]})
    host = onnxcc.compile(model, "host", quantize=q)
    cm = onnxcc.compile(model, "thumbv7em", quantize=q)
    assert "QLinearConv" in [n.op for n in cm.graph.nodes]
    for x in xs[32:]:
        got, want = qemu.run_on_qemu(cm, {"x": x})["y"], host.run({"x": x})["y"]
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


def test_round_ties_to_even_on_the_cortex_m4():
    """Round is llvm.rint (newlib's rintf on the M4, which has no rounding instruction): halves
    go to the even neighbour, -0.0, infinities and NaN pass, as numpy's round."""
    _tools_or_skip()
    m = make_model([("Round", ["x"], ["y"])], {"x": (12,)}, {"y": (12,)}, name="rnd")
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 1e10, -0.0, np.inf, np.nan, 3.7],
                 np.float32)
    y = qemu.run_on_qemu(onnxcc.compile(m, "thumbv7em"), {"x": x})["y"]
    np.testing.assert_array_equal(y, np.round(x))
    assert np.signbit(y[[3, 8]]).all()
