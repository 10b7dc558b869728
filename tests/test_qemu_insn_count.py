"""onnxcc's TCG plugin (runtime/qemu_plugin/insn_count.c) counts executed guest instructions
exactly: a hand-written loop of known length on the Cortex-M4 (mps2-an386) and on rv32imac
(virt), and one inference of a small model, deterministically."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import onnxcc
import pytest
from builders import make_model
from onnxcc.errors import BuildError
from onnxcc.runtime import qemu
from onnxcc.targets import get_target

pytestmark = pytest.mark.slow

# A countdown loop: two instructions per iteration and one return, so a call with n >= 1 runs
# exactly 2 n + 1 instructions (the callee's first instruction to its return, included).
LOOP = {
    "cortex-m4": (".syntax unified\n.thumb\n.global onnxcc_test_loop\n"
                  ".type onnxcc_test_loop, %function\n.thumb_func\nonnxcc_test_loop:\n"
                  "1: subs r0, r0, #1\n   bne 1b\n   bx lr\n"),
    "rv32imac": (".global onnxcc_test_loop\n.type onnxcc_test_loop, @function\n"
                 "onnxcc_test_loop:\n1: addi a0, a0, -1\n   bnez a0, 1b\n   ret\n"),
}
MAIN = """unsigned onnxcc_test_loop(unsigned n);
__asm__({asm});
volatile unsigned onnxcc_test_n = {n}u;
int main(void);
int main(void)
{{
    onnxcc_test_loop(onnxcc_test_n);
    return 0;
}}
"""


def _tiny(target: str):
    """y = Relu(x @ W + b) for x (1, 8), W (8, 4): 32 MACs."""
    rng = np.random.default_rng(3)
    model = make_model([("MatMul", ["x", "w"], ["m"]), ("Add", ["m", "b"], ["a"]),
                        ("Relu", ["a"], ["y"])], {"x": (1, 8)}, {"y": (1, 4)},
                       {"w": rng.standard_normal((8, 4)).astype(np.float32),
                        "b": rng.standard_normal(4).astype(np.float32)}, name="tiny")
    return onnxcc.compile(model, target)


@pytest.fixture(scope="module")
def models():
    """target -> the CompiledModel of :func:`_tiny` (its folder lives as long as it does)."""
    return {}


def _firmware_or_skip(models: dict, target: str) -> qemu.Firmware:
    """The firmware of :func:`_tiny` for ``target`` (its objects serve the loop firmware too);
    skips when the cross compiler or QEMU is missing."""
    mc = qemu.machine_for(get_target(target))
    arch = qemu.ARCHES[mc.arch]
    for tool, pkg in ((get_target(target).cc, arch.cc_packages), (arch.qemu, arch.qemu_package)):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install {pkg})")
    if target not in models:
        models[target] = _tiny(target)
    return qemu.firmware(models[target])


def _loop_count(fw: qemu.Firmware, target: str, n: int, tmp: Path) -> qemu.InstructionCount:
    asm = '"' + LOOP[target].replace("\n", '\\n"\n"') + '"'
    src = tmp / f"loop_{n}.c"
    src.write_text(MAIN.format(asm=asm, n=n))
    objs = [fw._compile(src, tmp / f"loop_{n}.o"), *fw.runtime_objects]
    elf = fw.link_objects(objs, tmp / f"loop_{n}.elf")
    return fw.count_elf(elf, "onnxcc_test_loop")


@pytest.mark.parametrize("target", ["cortex-m4", "rv32imac"])
def test_loop_count_is_exact(models, target, tmp_path):
    fw = _firmware_or_skip(models, target)
    n = 1000
    one, two = _loop_count(fw, target, n, tmp_path), _loop_count(fw, target, 2 * n, tmp_path)
    assert one.region == 2 * n + 1 and two.region == 4 * n + 1
    assert two.region - one.region == n * 2   # N more iterations of a 2-instruction body
    assert one.windows == two.windows == 1
    # The whole run differs by the loop alone: startup, exit and main are the same code.
    assert two.total - one.total == two.region - one.region
    assert one.total > one.region
    again = _loop_count(fw, target, n, tmp_path)
    assert again == one


@pytest.mark.parametrize("target", ["cortex-m4", "rv32imac"])
def test_model_count_is_deterministic(models, target):
    fw = _firmware_or_skip(models, target)
    cm = models[target]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 8)).astype(np.float32)
    counts = [qemu.count_instructions(cm, {"x": x}) for _ in range(2)]
    assert counts[0] == counts[1]
    assert fw.count({"x": x}) == counts[0]   # the cached firmware, the same path
    # The M4 has one float multiply-accumulate per instruction at best; rv32imac has no FPU
    # (each float MAC is two soft-float calls).
    assert counts[0] > (32 if target == "cortex-m4" else 32 * 20)
    prof = fw.run_profiled({"x": x})
    assert prof.instructions == counts[0] and prof.outputs["y"].shape == (1, 4)
    kernels = tuple(f"tiny_{k.name}_" for k in cm.program.kernels)
    assert any(f.startswith(kernels) for f, _ in prof.calls)
    assert 0 < sum(c for _, c in prof.calls) < prof.instructions
    # A saved library folder counts the same.
    assert qemu.count_instructions(cm.lib_dir, {"x": x}, target=target) == counts[0]


@pytest.mark.parametrize("target", ["cortex-m4", "rv32imac"])
def test_count_kernels_splits_the_inference(models, target):
    """Two MatMuls of the same shape run the same instructions on the M4 (the compiler may merge
    their functions into one; the calls still map to their kernels); the kernels and <m>_run's
    own instructions add up to the inference."""
    _firmware_or_skip(models, target)
    rng = np.random.default_rng(5)
    model = make_model([("MatMul", ["x", "w1"], ["h"]), ("MatMul", ["h", "w2"], ["y"])],
                       {"x": (1, 8)}, {"y": (1, 8)},
                       {"w1": rng.standard_normal((8, 8)).astype(np.float32),
                        "w2": rng.standard_normal((8, 8)).astype(np.float32)}, name="two")
    cm = onnxcc.compile(model, target)
    x = rng.standard_normal((1, 8)).astype(np.float32)
    prof = qemu.count_kernels(cm, {"x": x})
    per, total = prof.kernels, prof.instructions
    np.testing.assert_allclose(prof.outputs["y"], cm.run({"x": x})["y"], rtol=1e-5, atol=1e-6)
    assert total == qemu.count_instructions(cm, {"x": x})
    names = [k.name for k in cm.program.kernels]
    assert per is not None and list(per) == names and len(names) == 2
    assert per[names[0]] > 64 and per[names[1]] > 64   # 64 MACs each
    if target == "cortex-m4":
        # with the FPU no instruction depends on the data; rv32imac's soft float does
        assert per[names[0]] == per[names[1]]
    assert sum(per.values()) < total


@pytest.mark.parametrize("target", ["cortex-m4", "rv32imac"])
def test_stack_use_is_measured(models, target, tmp_path):
    """The harness paints the free stack: a kernel with a local array of n floats (the int8
    Conv's row of accumulators is one) uses at least 4 n bytes more than one without."""
    _firmware_or_skip(models, target)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 4, 1, 64)).astype(np.float32)
    w = rng.standard_normal((8, 4, 1, 1)).astype(np.float32)
    model = make_model([("Conv", ["x", "w"], ["y"])], {"x": (1, 4, 1, 64)}, {"y": (1, 8, 1, 64)},
                       {"w": w}, name="pw")
    cal = {"x": rng.standard_normal((4, 4, 1, 64)).astype(np.float32)}
    cf = onnxcc.compile(model, target)
    small = qemu.firmware(cf).run_profiled({"x": x}, calls=False)
    cq = onnxcc.compile(model, target, quantize=onnxcc.Int8(calibration=cal))
    big = qemu.firmware(cq).run_profiled({"x": x}, calls=False)
    src = (cq.lib_dir / "pw.c").read_text()
    local = [int(n) for n in re.findall(r"int32_t acc\[(\d+)\];", src)]
    assert 0 < small.stack_bytes < 256
    if local:   # the int8 Conv keeps a row of accumulators on the stack
        assert big.stack_bytes >= 4 * max(local)
    assert big.stack_bytes > 0


def test_plugin_build_failure_is_a_build_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ONNXCC_CACHE_DIR", str(tmp_path))
    with pytest.raises(BuildError, match="instruction-count plugin") as e:
        qemu.plugin_path(cc="false")
    assert "ONNXCC_CACHE_DIR" in str(e.value)


def test_plugin_load_failure_is_a_build_error(models, tmp_path, monkeypatch):
    fw = _firmware_or_skip(models, "cortex-m4")
    bad = tmp_path / "not_a_plugin.so"
    bad.write_bytes(b"\0" * 64)
    monkeypatch.setattr(qemu, "plugin_path", lambda cc=None: bad)
    with pytest.raises(BuildError, match="could not load onnxcc's instruction-count plugin") as e:
        fw.count({"x": np.zeros((1, 8), np.float32)})
    assert "API version 1" in str(e.value)


DRIVER = """unsigned onnxcc_test_loop(unsigned n);
__asm__({asm});
unsigned onnxcc_test_driver(unsigned n) __attribute__((noinline));
unsigned onnxcc_test_driver(unsigned n)
{{
    onnxcc_test_loop(n);
    onnxcc_test_loop(n + 1u);
    return 0;
}}
volatile unsigned onnxcc_test_n = {n}u;
int main(void);
int main(void)
{{
    onnxcc_test_driver(onnxcc_test_n);
    return 0;
}}
"""


@pytest.mark.parametrize("target", ["cortex-m4", "rv32imac"])
def test_calls_are_counted_per_callee(models, target, tmp_path):
    """The windows of the calls a function makes (the plugin's marks= file): two calls of the
    loop, n and n + 1 iterations, are 2 n + 1 and 2 n + 3 instructions."""
    fw = _firmware_or_skip(models, target)
    n = 300
    src = tmp_path / "driver.c"
    src.write_text(DRIVER.format(asm='"' + LOOP[target].replace("\n", '\\n"\n"') + '"', n=n))
    elf = fw.link_objects([fw._compile(src, tmp_path / "driver.o"), *fw.runtime_objects],
                          tmp_path / "driver.elf")
    c, per_site, _ = fw._count_run(elf, "onnxcc_test_driver", 60, calls=True)
    assert per_site == [("onnxcc_test_loop", 2 * n + 1), ("onnxcc_test_loop", 2 * n + 3)]
    assert c.windows == 1 and c.region > 4 * n + 4 + 2   # + the driver's calls and return
    assert fw.count_elf(elf, "onnxcc_test_driver") == c


def test_qemu_without_plugins_is_a_build_error(models, tmp_path, monkeypatch):
    """A QEMU built without --enable-plugins refuses the option (as QEMU's own message says)."""
    fw = _firmware_or_skip(models, "cortex-m4")
    fake = tmp_path / "qemu-system-arm"
    fake.write_text("#!/bin/sh\necho \"qemu-system-arm: -plugin: invalid option\" >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(fw, "qemu", str(fake))
    with pytest.raises(BuildError, match="could not load onnxcc's instruction-count plugin") as e:
        fw.count({"x": np.zeros((1, 8), np.float32)})
    assert "--enable-plugins" in str(e.value)


def test_call_window_needs_one_call(models, tmp_path):
    fw = _firmware_or_skip(models, "cortex-m4")
    src = tmp_path / "twice.c"
    src.write_text(MAIN.format(asm='"' + LOOP["cortex-m4"].replace("\n", "\\n") + '"', n=3)
                   .replace("    return 0;", "    onnxcc_test_loop(onnxcc_test_n);\n    return 0;"))
    elf = fw.link_objects([fw._compile(src, tmp_path / "twice.o"), *fw.runtime_objects],
                          tmp_path / "twice.elf")
    with pytest.raises(BuildError, match="calls onnxcc_test_loop 2 times"):
        qemu.call_window(elf, "onnxcc_test_loop", fw.cc)
    with pytest.raises(BuildError, match="no function 'nowhere'"):
        qemu.call_window(elf, "nowhere", fw.cc)
