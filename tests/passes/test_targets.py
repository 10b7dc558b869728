"""targets: each target's facts and its pipeline, a plain ordered list of passes."""

import dataclasses

import pytest
from onnxcc.errors import OnnxccError
from onnxcc.passes import GraphPass
from onnxcc.targets import TARGETS, Target, get_target, mcu

ORDER = ["fuse_qdq", "canonicalize", "fold_batchnorm", "canonicalize", "float16_compute",
         "fuse_conv_activation", "fuse_elementwise", "schedule", "plan_memory"]
# the MCU targets also run patch-based execution of a CNN's first stage (passes/patch.py)
# and plan depthwise Convs in place (TinyEngine)
MCU_ORDER = ORDER[:7] + ["patch[max_recompute=0.15]"] + ORDER[7:-1] + [
    "plan_memory[alignment=16,depthwise_in_place=True]"]


def test_known_targets_and_their_facts():
    assert list(TARGETS) == ["host", "cpu", "x86-64-v2", "x86-64-v3", "x86-64-v4", "aarch64",
                             "cortex-m0plus", "cortex-m3", "cortex-m4", "thumbv7em", "cortex-m7",
                             "cortex-m33", "cortex-m55", "rv32imac",
                             "xczu7ev", "xc7z020", "xcvu9p", "xcu250"]
    zu7 = get_target("xczu7ev")
    assert zu7.family == "fpga" and zu7.backend == "hls" and zu7.clock_hz == 200_000_000
    assert (zu7.fpga.dsp, zu7.fpga.bram18, zu7.fpga.lut, zu7.fpga.ff) == \
        (1728, 624, 230_400, 460_800)
    m4 = get_target("cortex-m4")
    assert isinstance(m4, Target) and m4.family == "mcu" and m4.weights_in_c
    assert m4.c_flags == ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
    assert (m4.sram_bytes, m4.flash_bytes, m4.clock_hz) == (192 * 1024, 1 << 20, 168_000_000)
    assert m4.dsp and m4.board == "STM32F407"
    host = get_target("host")
    assert not host.dsp and host.family == "cpu" and not host.weights_in_c and host.sram_bytes is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        m4.name = "other"  # frozen


def pipeline_family(name: str) -> str:
    return get_target(name).family


@pytest.mark.parametrize("name", ["host", "cortex-m4"])
def test_pipeline_is_a_plain_ordered_list(name):
    pipeline = get_target(name).pipeline
    assert isinstance(pipeline, list) and all(isinstance(p, GraphPass) for p in pipeline)
    assert [p.name for p in pipeline] == (MCU_ORDER if pipeline_family(name) == "mcu" else ORDER)
    assert [p.name for p in mcu.PIPELINE] == MCU_ORDER


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(OnnxccError, match="known targets: host, cpu, .*, cortex-m4, .*rv32imac"):
        get_target("esp32")


# (target, float ABI/FPU flags, DSP extension)
CORES = [("cortex-m0plus", ("-mfloat-abi=soft",), False),
         ("cortex-m3", ("-mfloat-abi=soft",), False),
         ("cortex-m4", ("-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"), True),
         ("cortex-m7", ("-mfloat-abi=hard", "-mfpu=fpv5-d16"), True),
         ("cortex-m33", ("-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"), True),
         ("cortex-m55", ("-mfloat-abi=hard", "-mfpu=auto"), True)]


@pytest.mark.parametrize("name,fpu,dsp", CORES)
def test_cortex_m_cores(name, fpu, dsp):
    t = get_target(name)
    assert t.family == "mcu" and t.weights_in_c and t.pointer_bits == 32 and t.cc == "arm-none-eabi-gcc"
    assert t.c_flags == (f"-mcpu={name}", "-mthumb", *fpu) and t.dsp is dsp
    assert t.board and t.sram_bytes and t.flash_bytes and t.clock_hz
    assert ("DSP extension" in t.describe()) and (("no DSP" in t.describe()) is not dsp)


def test_rv32imac():
    t = get_target("rv32imac")
    assert t.cc == "riscv64-unknown-elf-gcc" and not t.dsp and t.pointer_bits == 32
    assert t.c_flags[:2] == ("-march=rv32imac", "-mabi=ilp32")
