"""LSTM, GRU and RNN lowered to the loop IR (codegen/lower/rnn.py): the kernel's shape in the
text form, verify, and the Program run in the loop interpreter and as C against onnxruntime."""

import numpy as np
import pytest
from builders import ort_run, rnn_model
from loopir import program_of, run_c, run_interp
from onnxcc.codegen.loops import kernel_text

# a reverse RNN with sequence_lens: step s reads t = 1 - s, skipped (Y zeroed) past the
# length; a zero-length entry's Y_h is 0
EXPECTED_REVERSE_RNN = """\
kernel k0(out Y:f32[2,1,1,2] @output0, out Y_h:f32[1,1,2] @output1, in X:f32[2,1,2] @input0, in W:f32[1,2,2] @weight, in R:f32[1,2,2] @weight, in B:f32[1,4] @weight, in lens:i32[1] @input1)
  local h:f32[2] @local
  local gates:f32[2] @local
  for b0 in 0..1:
    for j2 in 0..2:
      h[j2] = 0.0:f32
    len0:i32 = lens[b0]
    for s1 in 0..2:
      if (((s1 * -1) + 1) < len0):
        for g4 in 0..2:
          acc0:f32 = (B[0, g4] + B[0, (g4 + 2)])
          for i5 in 0..2:
            acc0 = muladd(X[((s1 * -1) + 1), b0, i5], W[0, g4, i5], acc0)
          for k6 in 0..2:
            acc0 = muladd(h[k6], R[0, g4, k6], acc0)
          gates[g4] = acc0
        for j3 in 0..2:
          hn0_in:f32 = gates[j3]
          hn0:f32 = tanh(hn0_in)
          h[j3] = hn0
          Y[((s1 * -1) + 1), 0, b0, j3] = hn0
      else:
        for j7 in 0..2:
          Y[((s1 * -1) + 1), 0, b0, j7] = 0.0:f32
    for j8 in 0..2:
      Y_h[0, b0, j8] = (h[j8] if (len0 > 0) else 0.0:f32)"""


def test_reverse_rnn_kernel_text():
    m, feeds = rnn_model("RNN", T=2, N=1, I=2, H=2, direction="reverse", lens=[1])
    p = program_of(m)
    assert [k.op for k in p.kernels] == ["RNN"]
    assert kernel_text(p.kernels[0]) == EXPECTED_REVERSE_RNN
    want = ort_run(m, feeds)
    got = run_interp(p, [feeds[b.value] for b in p.inputs])
    for b, g in zip(p.outputs, got):
        np.testing.assert_allclose(g, want[b.value], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op,kw", [
    ("LSTM", dict(direction="bidirectional", lens=[3, 1], h0=True, c0=True, peep=True, clip=0.9)),
    ("LSTM", dict(input_forget=1, outputs=("Y_c",))),
    ("GRU", dict(direction="bidirectional", lens=[2, 3], linear_before_reset=1)),
    ("GRU", dict(direction="reverse", activations=["HardSigmoid", "Softsign"])),
    ("RNN", dict(direction="bidirectional", h0=True, activations=["Relu", "Elu"])),
])
def test_interpreter_and_c(op, kw):
    # verified by program_of; one kernel with the state in locals h (and c) and the gates
    m, feeds = rnn_model(op, T=4, **kw)
    p = program_of(m)
    (k,) = p.kernels
    assert [b.name for b in k.locals] == ["h", "gates"] + (["c"] if op == "LSTM" else [])
    want = ort_run(m, feeds)
    xs = [feeds[b.value] for b in p.inputs]
    for got in (run_interp(p, xs), run_c(p, xs)):
        for b, g in zip(p.outputs, got):
            np.testing.assert_allclose(g, want[b.value], rtol=1e-5, atol=1e-6, err_msg=b.value)
