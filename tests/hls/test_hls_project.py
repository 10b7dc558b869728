"""FPGA projects: the saved folder (files, build_prj.tcl, test bench), the CLI, hostile names,
and the errors a user can cause (unsupported ops, precision configs, a wrong quantize)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxcc
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxcc.codegen.hls.reference import reference

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "compiler" / "models" / "digits.onnx"


def _model(names: dict[str, str], ops=("Relu",), name="g") -> onnx.ModelProto:
    """x -> Gemm(w, b) -> ops... -> y, every tensor and node named from ``names``."""
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (4, 6)).astype(np.float32), names["w"]),
             numpy_helper.from_array(rng.normal(0, 0.1, (6,)).astype(np.float32), names["b"])]
    nodes = [helper.make_node("Gemm", [names["x"], names["w"], names["b"]], [names["h"]],
                              name=names["gemm"])]
    cur = names["h"]
    for k, op in enumerate(ops):
        out = names["y"] if k == len(ops) - 1 else f"{cur}_{k}"
        nodes.append(helper.make_node(op, [cur], [out], name=f"{names['node']}{k}"))
        cur = out
    g = helper.make_graph(nodes, name,
                          [helper.make_tensor_value_info(names["x"], TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info(names["y"], TensorProto.FLOAT, [1, 6])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    return m


PLAIN = {"x": "x", "w": "w", "b": "b", "h": "h", "y": "y", "gemm": "gemm", "node": "act"}
HOSTILE = {"x": 'in"put\n*/ [exec rm -rf ~]', "w": "int", "b": "#define b 1", "h": "??=h\\",
           "y": "out_y}; system(\"x\"); //", "gemm": "gemm */ { puts", "node": "$::env(HOME) ["}


def test_hostile_names_compile_run_and_stay_out_of_the_code(tmp_path):
    model = _model(HOSTILE, ops=("Relu", "Clip"), name='we"ird\n*/ [exec ls]')
    m = onnxcc.compile(model, "xczu7ev")
    x = np.random.default_rng(0).normal(0, 1, (1, 4)).astype(np.float32)
    got = m.run({HOSTILE["x"]: x})
    want = reference(m.graph, m.precision, {HOSTILE["x"]: x})
    assert np.array_equal(got[HOSTILE["y"]].astype(np.float64), want[HOSTILE["y"]])
    assert m.csim_warnings == ""
    m.save(tmp_path / "p")
    tcl = (tmp_path / "p" / "build_prj.tcl").read_text()
    code = "\n".join(l for l in tcl.splitlines() if not l.startswith("#"))
    assert "[exec" not in code and "$::env" not in code and "rm -rf" not in code
    assert re.fullmatch(r"[a-z][a-z0-9_]*", m.mmap["c_prefix"])
    assert f"set_top {m.mmap['c_prefix']}\n" in code
    for f in (tmp_path / "p").rglob("*.cpp"):
        for line in f.read_text().splitlines():
            body = line.split("//", 1)[0]
            assert not re.search(r"\bsystem\b|\bputs\b|\"x\"|#define b", body), line


def test_project_files_tcl_and_testbench(tmp_path):
    out = tmp_path / "prj"
    r = subprocess.run([sys.executable, "-m", "onnxcc.cli", "compile", str(DIGITS), "--target",
                        "xc7z020", "--input-shape", "input=1,1,8,8", "--io", "io_stream", "--precision",
                        "ap_fixed<16,6>", "--precision-layer", "fc1=ap_fixed<18,8>", "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "project: Vitis HLS, part xc7z020clg400-1, clock 10 ns" in r.stdout
    for rel in ("firmware/digits.cpp", "firmware/digits.h", "firmware/defines.h",
                "firmware/weights/w0.h", "digits_test.cpp", "digits_bridge.cpp", "build_prj.tcl",
                "tb_data/tb_input_features.dat", "tb_data/tb_output_predictions.dat",
                "digits.json"):
        assert (out / rel).is_file(), rel
    assert "ap_fixed<18,8,AP_RND_CONV,AP_SAT>" in (out / "firmware" / "defines.h").read_text()
    assert (out / "firmware" / "onnxcc_stream.h").is_file()             # --io io_stream
    tcl = (out / "build_prj.tcl").read_text()
    named = re.findall(r"add_files(?: -tb)? (\S+)", tcl)
    assert named and all((out / n).exists() for n in named), named
    assert "set_part {xc7z020clg400-1}" in tcl and "create_clock -period 10" in tcl
    for step in ("csim_design", "csynth_design", "cosim_design", "export_design -format ip_catalog"):
        assert step in tcl
    r = subprocess.run([sys.executable, "-m", "onnxcc.cli", "hls", "build", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 output values differ" in r.stdout and "passed" in r.stdout
    assert "warning" not in r.stdout.lower()       # the test bench builds with -Wall -Wextra
    # a second save keeps the user's files and refuses a file where a folder goes
    (out / "firmware" / "notes.txt").write_text("mine")
    m = onnxcc.compile(DIGITS, "xc7z020", input_shapes={"input": (1, 1, 8, 8)})
    m.save(out)
    assert (out / "firmware" / "notes.txt").read_text() == "mine"
    (out / "tb_data" / "tb_input_features.dat").unlink()
    (out / "tb_data" / "tb_output_predictions.dat").unlink()
    (out / "tb_data").rmdir()
    (out / "tb_data").write_text("mine too")
    before = sorted(p.name for p in out.rglob("*"))
    with pytest.raises(onnxcc.OutputError, match="tb_data"):
        m.save(out)
    assert sorted(p.name for p in out.rglob("*")) == before


def test_targets_listed():
    r = subprocess.run([sys.executable, "-m", "onnxcc.cli", "targets"], capture_output=True,
                       text=True)
    assert r.returncode == 0
    for part in ("xczu7ev-ffvc1156-2-e", "xc7z020clg400-1", "xcvu9p", "xcu250"):
        assert part in r.stdout


def test_unsupported_ops_listed_before_anything_is_written(tmp_path):
    model = _model(PLAIN, ops=("Relu", "Erf", "Exp"))
    with pytest.raises(onnxcc.UnsupportedOpError) as e:
        onnxcc.compile(model, "xczu7ev")
    text = str(e.value)
    assert "act1" in text and "Erf" in text and "act2" in text and "Exp" in text
    assert "'gemm'" not in text


def test_precision_errors():
    model = _model(PLAIN)
    with pytest.raises(onnxcc.PrecisionError, match="nosuchlayer"):
        onnxcc.compile(model, "xczu7ev", quantize=onnxcc.FixedPoint(layers={"nosuchlayer": "ap_fixed<8,3>"}))
    with pytest.raises(onnxcc.PrecisionError, match="'h' fused or folded away"):   # Gemm+Relu
        onnxcc.compile(model, "xczu7ev", quantize=onnxcc.FixedPoint(layers={"h": "ap_fixed<8,3>"}))
    with pytest.raises(onnxcc.PrecisionError, match="ap_fixed<8>"):
        onnxcc.compile(model, "xczu7ev", quantize=onnxcc.FixedPoint(default="ap_fixed<8>"))
    with pytest.raises(onnxcc.PrecisionError, match="FPGA target"):
        onnxcc.compile(model, "xczu7ev", quantize="int8")   # Int8(...) or FixedPoint(...) only
    r = subprocess.run([sys.executable, "-m", "onnxcc.cli", "compile", str(DIGITS), "-t", "xczu7ev",
                        "--precision-layer", "nonsense"], capture_output=True, text=True)
    assert r.returncode != 0 and "NAME=TYPE" in r.stderr


def _dense(n_in: int, n_out: int) -> onnx.ModelProto:
    rng = np.random.default_rng(4)
    inits = [numpy_helper.from_array(rng.normal(0, 0.2, (n_in, n_out)).astype(np.float32), "w")]
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "dense",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    return m


def test_reuse_factor_divides_multipliers_and_keeps_the_numbers():
    model = _dense(64, 8)
    one = onnxcc.compile(model, "xczu7ev")
    four = onnxcc.compile(model, "xczu7ev", hls=onnxcc.HLSConfig(reuse_factor={"fc": 4}))
    e1, e4 = (m.mmap["estimates"]["layers"][0] for m in (one, four))
    assert (e1["ii"], e1["multipliers"], e1["dsp"]) == (1, 64, 64)
    assert (e4["ii"], e4["multipliers"], e4["dsp"]) == (4, 16, 16)
    assert e4["latency"] - e1["latency"] == (8 - 1) * 3     # 8 outputs, 3 more cycles apart
    text = (four.lib_dir / "firmware" / "dense.cpp").read_text()
    assert "HLS PIPELINE II=4" in text and "HLS ALLOCATION operation instances=mul limit=16" in text
    x = np.random.default_rng(1).normal(0, 1, (1, 64)).astype(np.float32)
    assert np.array_equal(one.run({"x": x})["y"], four.run({"x": x})["y"])
    report = four.report()
    assert "estimated, not synthesized" in report and "DSP" in report and "fc" in report
    with pytest.raises(onnxcc.OnnxccError, match="nosuch"):
        onnxcc.compile(model, "xczu7ev", hls=onnxcc.HLSConfig(reuse_factor={"nosuch": 2}))
    with pytest.raises(onnxcc.OnnxccError, match="at least 1"):
        onnxcc.compile(model, "xczu7ev", hls=onnxcc.HLSConfig(reuse_factor=0))
    with pytest.raises(onnxcc.OnnxccError, match="FPGA"):
        onnxcc.compile(model, "host", hls=onnxcc.HLSConfig(reuse_factor=2))


def test_design_that_does_not_fit_is_refused_before_any_file(tmp_path):
    model = _dense(256, 16)                    # 256 products per output: 256 DSP at II=1
    out, src = tmp_path / "never", tmp_path / "dense.onnx"
    onnx.save(model, str(src))
    r = subprocess.run([sys.executable, "-m", "onnxcc.cli", "compile", str(src), "--target",
                        "xc7z020", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode != 0 and "does not fit xc7z020" in r.stderr
    with pytest.raises(onnxcc.DesignFitError) as e:
        onnxcc.compile(model, "xc7z020")
    assert "DSP 256 of 220" in str(e.value) and "fc" in str(e.value) and "reuse" in e.value.hint
    assert not out.exists()
    m = onnxcc.compile(model, "xc7z020", hls=onnxcc.HLSConfig(reuse_factor=2))
    assert m.mmap["estimates"]["total"]["dsp"] == 128
    r = subprocess.run([sys.executable, "-m", "onnxcc.cli", "report", str(DIGITS), "-t", "xczu7ev",
                        "--input-shape", "input=1,1,8,8", "--reuse-factor", "conv2=4"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert re.search(r"conv2 .* 4 ", r.stdout) and "xczu7ev-ffvc1156-2-e" in r.stdout


def test_precision_file(tmp_path):
    from onnxcc.codegen.hls.fixed import load_precision_file

    f = tmp_path / "prec.toml"
    f.write_text('default = "ap_fixed<14,5>"\nweight_width = 12\n[layers]\ngemm = "ap_fixed<20,8>"\n')
    cfg = load_precision_file(f)
    assert cfg.weight_width == 12 and cfg.layers == {"gemm": "ap_fixed<20,8>"}
    m = onnxcc.compile(_model(PLAIN), "xczu7ev", quantize=cfg)
    assert m.mmap["types"]["y"] == "ap_fixed<20,8>" and m.mmap["types"]["x"] == "ap_fixed<14,5>"
    (tmp_path / "bad.toml").write_text('defualt = "ap_fixed<8,3>"\n')
    with pytest.raises(onnxcc.PrecisionError, match="defualt"):
        load_precision_file(tmp_path / "bad.toml")
    src = tmp_path / "m.onnx"
    onnx.save(_model(PLAIN), str(src))
    r = subprocess.run([sys.executable, "-m", "onnxcc.cli", "report", str(src), "-t", "xc7z020",
                        "--precision-file", str(f), "--precision-layer", "x=ap_fixed<10,4>"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "ap_fixed<20,8>" in r.stdout


CSYNTH = """<?xml version="1.0" encoding="UTF-8"?>
<profile>
  <UserAssignments><TargetClockPeriod>5.00</TargetClockPeriod></UserAssignments>
  <PerformanceEstimates>
    <SummaryOfTimingAnalysis><EstimatedClockPeriod>3.650</EstimatedClockPeriod></SummaryOfTimingAnalysis>
    <SummaryOfOverallLatency>
      <Best-caseLatency>1120</Best-caseLatency><Worst-caseLatency>1120</Worst-caseLatency>
      <Interval-min>1121</Interval-min><Interval-max>1121</Interval-max>
    </SummaryOfOverallLatency>
  </PerformanceEstimates>
  <AreaEstimates>
    <Resources><BRAM_18K>2</BRAM_18K><DSP>{dsp}</DSP><FF>21034</FF><LUT>15022</LUT><URAM>0</URAM></Resources>
    <AvailableResources><BRAM_18K>624</BRAM_18K><DSP>1728</DSP><FF>460800</FF><LUT>230400</LUT></AvailableResources>
  </AreaEstimates>
</profile>
"""


def test_synthesis_report_parsed_beside_the_estimates(tmp_path):
    """`onnxcc hls build --synth` (with Vitis HLS) prints the csynth report's totals beside the
    estimates; the parser reads Vitis's csynth.xml (DSP, or DSP48E from Vivado HLS)."""
    from onnxcc.runtime.hls import parse_csynth, synthesis_table

    f = tmp_path / "digits_csynth.xml"
    f.write_text(CSYNTH.format(dsp=181))
    got = parse_csynth(f)
    assert got == {"latency": 1120, "interval": 1121, "clock_ns": 3.65, "dsp": 181, "bram18": 2,
                   "lut": 15022, "ff": 21034}
    f.write_text(CSYNTH.format(dsp=181).replace("<DSP>", "<DSP48E>").replace("</DSP>", "</DSP48E>"))
    assert parse_csynth(f)["dsp"] == 181
    m = onnxcc.compile(DIGITS, "xczu7ev", input_shapes={"input": (1, 1, 8, 8)})
    table = synthesis_table(m.mmap, got)
    assert "Vitis HLS csynth" in table and "1,120" in table and "181" in table
    (tmp_path / "bad.xml").write_text("<profile/>")
    with pytest.raises(onnxcc.BuildError):
        parse_csynth(tmp_path / "bad.xml")


def test_check_names_nodes_without_an_fpga_kernel(tmp_path):
    src = tmp_path / "m.onnx"
    onnx.save(_model(PLAIN, ops=("Relu", "Erf")), str(src))
    r = subprocess.run([sys.executable, "-m", "onnxcc.cli", "check", str(src), "-t", "xczu7ev"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "act1" in r.stderr and "Erf" in r.stderr


def test_zoo_squeezenet_becomes_a_project_and_shufflenet_is_refused_by_name():
    """squeezenet (Softmax over axis 1 of (1, 1000, 1, 1)) compiles for the xcu250; shufflenet
    needs more block RAM than the part has, and the error names the largest tensors."""
    m = onnxcc.compile("zoo:squeezenet", "xcu250")
    sm = [n for n in m.graph.nodes if n.op == "onnxcc.TableSoftmax"]
    assert len(sm) == 1 and sm[0].attrs["axis"] == 1
    assert (m.lib_dir / "firmware" / "squeezenet.cpp").is_file()
    with pytest.raises(onnxcc.DesignFitError, match=r"BRAM18 .* of 5,376; largest: tensor") as e:
        onnxcc.compile("zoo:shufflenet", "xcu250")
    assert "narrow the types" in e.value.hint


def test_whole_array_join_later_input_behind_a_whole_tensor_layer_is_shallow(tmp_path):
    """io_stream: a Concat of 2-D tensors reads each input whole, in order: Relu(dense_a(x)),
    Softmax(dense_b(x)), Relu(x). The Softmax holds its whole input before it writes, so a
    full FIFO after it stalls nothing the first input needs: 2 deep (was the 96-element
    tensor). Relu(x) streams from the input the first branch also reads: whole tensor (16).
    The concurrent C-simulation passes with these depths, and deadlocks with the last FIFO 2
    deep."""
    from onnxcc.runtime.hls import run_testbench

    r = np.random.default_rng(0)
    a = lambda *s: r.normal(0, .3, s).astype(np.float32)   # noqa: E731
    init = [numpy_helper.from_array(v, n) for v, n in [(a(16, 96), "wa"), (a(16, 96), "wb"),
                                                        (a(208, 4), "wc")]]
    mk = helper.make_node
    nodes = [mk("MatMul", ["x", "wa"], ["ha"]), mk("Relu", ["ha"], ["ra"]),
             mk("MatMul", ["x", "wb"], ["hb"]), mk("Softmax", ["hb"], ["sb"], axis=-1),
             mk("Relu", ["x"], ["rx"]), mk("Concat", ["ra", "sb", "rx"], ["cc"], axis=1),
             mk("MatMul", ["cc", "wc"], ["y"])]
    g = helper.make_graph(nodes, "join", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 16])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 4])], init)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    m = onnxcc.compile(model, "xczu7ev", hls=onnxcc.HLSConfig(io="io_stream"))
    cpp = m.lib_dir / "firmware" / f"{m.mmap['c_prefix']}.cpp"
    text = cpp.read_text()
    cat = re.search(r"static void \w+_(k\d+)\(hls::stream<\w+> &w_\w+, hls::stream<\w+> &r_\w+, "
                    r"hls::stream<\w+> &r_\w+, hls::stream<\w+> &r_\w+\)", text).group(1)
    into = [(s, int(d)) for s, d in re.findall(r"STREAM variable=(\w+) depth=(\d+)", text)
            if s.endswith("_" + cat)]
    assert [d for _, d in into] == [2, 2, 16], into    # ra, sb (behind the Softmax), rx
    out = tmp_path / "prj"
    m.save(out)
    ok, log = run_testbench(out, threads=True, deadlock_seconds=5)
    assert ok and "0 output values differ" in log, log
    ok, log = run_testbench(out, threads=True, deadlock_seconds=2, depths={into[2][0]: 2})
    assert not ok and "onnxcc: deadlock:" in log, log
