"""targets: each target's facts and its pipeline, a plain ordered list of passes."""

import dataclasses

import pytest
from onnxcc.errors import OnnxccError
from onnxcc.passes import GraphPass
from onnxcc.targets import TARGETS, Target, get_target, mcu

ORDER = ["fuse_qdq", "canonicalize", "fold_batchnorm", "canonicalize",
         "fuse_conv_activation", "fuse_elementwise", "schedule", "plan_memory"]


def test_known_targets_and_their_facts():
    assert list(TARGETS) == ["host", "cpu", "x86-64-v2", "x86-64-v3", "x86-64-v4", "aarch64",
                             "cortex-m4", "xczu7ev", "xc7z020", "xcvu9p", "xcu250"]
    zu7 = get_target("xczu7ev")
    assert zu7.family == "fpga" and zu7.backend == "hls" and zu7.clock_hz == 200_000_000
    assert (zu7.fpga.dsp, zu7.fpga.bram18, zu7.fpga.lut, zu7.fpga.ff) == \
        (1728, 624, 230_400, 460_800)
    m4 = get_target("cortex-m4")
    assert isinstance(m4, Target) and m4.family == "mcu" and m4.weights_in_c
    assert m4.c_flags == ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
    assert (m4.sram_bytes, m4.flash_bytes, m4.clock_hz) == (192 * 1024, 1 << 20, 168_000_000)
    host = get_target("host")
    assert host.family == "cpu" and not host.weights_in_c and host.sram_bytes is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        m4.name = "other"  # frozen


@pytest.mark.parametrize("name", ["host", "cortex-m4"])
def test_pipeline_is_a_plain_ordered_list(name):
    pipeline = get_target(name).pipeline
    assert isinstance(pipeline, list) and all(isinstance(p, GraphPass) for p in pipeline)
    assert [p.name for p in pipeline] == ORDER
    assert [p.name for p in mcu.PIPELINE] == ORDER


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(OnnxccError, match="known targets: host, cpu, .*, cortex-m4"):
        get_target("esp32")
