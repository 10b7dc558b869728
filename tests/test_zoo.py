"""End to end on real models: the nine light zoo models inside the onnx wheel and the bundled
digits CNN, compiled to C for the host, built, run, compared with onnxruntime."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest

from builders import ort_run
import onnxcc
from onnxcc.runtime.build import CORTEX_M4_FLAGS, WARN_FLAGS
from onnxcc.zoo import ZOO, zoo_expected_output, zoo_input, zoo_path

MODELS = Path(onnxcc.__file__).parent / "models"


def _with_logits_output(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The light models end in Softmax over near-equal logits (their weights are fills), which
    would hide most errors: also expose the input of the final Softmax as a graph output."""
    last = proto.graph.node[-1]
    if last.op_type == "Softmax":
        proto.graph.output.append(onnx.helper.make_tensor_value_info(last.input[0], onnx.TensorProto.FLOAT, None))
    return proto


# the three heaviest models run on the C back end only (their LLVM builds took 40 s of the
# suite's 15-minute budget; the LLVM back end runs the other six zoo models here and the real
# models of test_real_models.py)
ZOO_CASES = [(n, t) for n in ZOO for t in ("host", "cpu")
             if t == "host" or n not in ("densenet121", "inception_v1", "inception_v2")]


@pytest.mark.slow
@pytest.mark.parametrize("name,target", ZOO_CASES)
def test_zoo_model_matches_onnxruntime_and_stored_output(name, target):
    """host: the C back end built with cc; cpu: the LLVM back end through its JIT."""
    proto = _with_logits_output(onnx.load(zoo_path(name)))
    proto.ir_version = min(proto.ir_version, 10)
    cm = onnxcc.compile(proto, target)
    x = zoo_input(cm.graph.inputs[0].shape)
    got = cm.run({cm.graph.inputs[0].name: x})
    want = ort_run(proto, {cm.graph.inputs[0].name: x})
    assert set(got) == set(want)
    for k in want:
        scale = float(np.abs(want[k]).max()) or 1.0
        np.testing.assert_allclose(got[k], want[k], rtol=1e-3, atol=1e-4 * max(scale, 1.0), err_msg=k)
    np.testing.assert_allclose(got[cm.graph.outputs[0].name], zoo_expected_output(name), rtol=1e-3, atol=1e-4)
    plan = cm.graph.meta["memory_plan"]
    assert plan.arena_size <= 1.15 * plan.lower_bound


def _digits():
    data = np.load(MODELS / "digits_test.npz")
    return data["x"], data["y"]


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_digits_build_matches_onnxruntime_accuracy(target):
    x, y = _digits()
    cm = onnxcc.compile(MODELS / "digits.onnx", target, input_shapes={"input": x.shape})
    assert "onnxcc.FusedConv" in [n.op for n in cm.graph.nodes]          # BN folded, Relu fused
    assert "BatchNormalization" not in [n.op for n in cm.graph.nodes]
    got = cm.run({"input": x})["probabilities"]
    want = ort_run(onnx.load(MODELS / "digits.onnx"), {"input": x})["probabilities"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert (got.argmax(1) == y).mean() == (want.argmax(1) == y).mean() >= 0.95


@pytest.mark.slow
def test_digits_under_address_and_undefined_sanitizers():
    x, _ = _digits()
    cm = onnxcc.compile(MODELS / "digits.onnx", "host", input_shapes={"input": (8, 1, 8, 8)})
    got = cm.run({"input": x[:8]}, sanitize=True)["probabilities"]
    want = ort_run(onnx.load(MODELS / "digits.onnx"), {"input": x[:8]})["probabilities"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_squeezenet_under_sanitizers():
    cm = onnxcc.compile("zoo:squeezenet", "host")
    x = zoo_input(cm.graph.inputs[0].shape)
    got = cm.run({cm.graph.inputs[0].name: x}, sanitize=True)[cm.graph.outputs[0].name]
    np.testing.assert_allclose(got, zoo_expected_output("squeezenet"), rtol=1e-3, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("cc,flags", [("clang", ()), ("arm-none-eabi-gcc", CORTEX_M4_FLAGS)])
@pytest.mark.parametrize("name", ["inception_v2", "shufflenet"])
def test_zoo_c_compiles_warning_free_with_other_compilers(name, cc, flags):
    if not shutil.which(cc):
        pytest.skip(f"{cc} not installed")
    cm = onnxcc.compile(f"zoo:{name}", "host")
    m = cm.mmap["c_prefix"]
    for src in (f"{m}.c", f"{m}_weights.c"):
        subprocess.run([cc, *WARN_FLAGS, *flags, "-O1", f"-I{cm.lib_dir}", f"-Wa,-I{cm.lib_dir}", "-c",
                        str(cm.lib_dir / src), "-o", "/dev/null"], check=True)
