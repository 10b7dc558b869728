"""C-simulation of an HLS project without a vendor tool: g++ builds the design and its bridge
into a shared library, loaded with ctypes.

The ``ap_fixed``/``ap_int`` headers come from ``$XILINX_HLS/include`` when Vitis HLS is
installed, else from the ``hls4ml`` package (``pip install onnxcc[hls]``), whose wheel ships
Xilinx's Apache-2.0 arbitrary-precision headers. No vendor header is copied into onnxcc.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from onnxcc.errors import BuildError, ShapeError

CXX_FLAGS = ("-std=c++14", "-O0", "-Wall", "-Wextra", "-fPIC", "-shared")


def ap_include_dir() -> Path:
    """The folder holding ``ap_fixed.h``: ``$XILINX_HLS/include``, else hls4ml's bundled copy.
    Raises BuildError saying how to get them when neither exists."""
    xil = os.environ.get("XILINX_HLS")
    if xil and (Path(xil) / "include" / "ap_fixed.h").is_file():
        return Path(xil) / "include"
    spec = importlib.util.find_spec("hls4ml")
    if spec is not None and spec.origin:
        d = Path(spec.origin).parent / "templates" / "vivado" / "ap_types"
        if (d / "ap_fixed.h").is_file():
            return d
    raise BuildError("C-simulation needs the ap_fixed headers, and none were found",
                     hint="install them with `pip install onnxcc[hls]` (the hls4ml package "
                     "ships Xilinx's Apache-2.0 headers), or set XILINX_HLS to a Vitis HLS "
                     "installation")


def build_csim(project: Path, manifest: dict, *, cxx: str | None = None,
               out_dir: Path | None = None) -> tuple[Path, str]:
    """Build ``<m>_bridge.cpp`` and ``firmware/<m>.cpp`` of ``project`` into a shared library;
    returns (its path, the compiler's warnings text). The ap headers are included as system
    headers, so the warnings are the generated code's own. Raises BuildError with the
    compiler's message when the build fails."""
    cxx = cxx or os.environ.get("CXX") or "g++"
    if not shutil.which(cxx):
        raise BuildError(f"C-simulation needs a C++ compiler and {cxx!r} was not found",
                         hint="install g++ (Debian: apt-get install g++) or set CXX")
    m = manifest["c_prefix"]
    out_dir = out_dir or Path(tempfile.mkdtemp(prefix="onnxcc_csim_"))
    lib = out_dir / f"lib{m}_csim.so"
    cmd = [cxx, *CXX_FLAGS, "-isystem", str(ap_include_dir()), "-I", str(project),
           str(project / "firmware" / f"{m}.cpp"), str(project / f"{m}_bridge.cpp"), "-o", str(lib)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError(f"C-simulation build of {m} failed:\n{r.stderr[-4000:]}",
                         hint="this is an onnxcc bug: please report it with the model")
    return lib, r.stderr


class CSimLibrary:
    """A built C-simulation library: ``run(inputs)`` converts float inputs to the design's
    types, runs the top function and returns its outputs as float32 arrays."""

    def __init__(self, lib: Path, manifest: dict) -> None:
        self.manifest = manifest
        self._lib = ctypes.CDLL(str(lib))
        self._fn = getattr(self._lib, f"{manifest['c_prefix']}_csim")
        self._fn.restype = None

    def run(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        args, keep = [], []
        for spec in self.manifest["inputs"]:
            if spec["name"] not in inputs:
                raise ShapeError(f"missing input {spec['name']!r}",
                                 hint=f"feed every input: {[s['name'] for s in self.manifest['inputs']]}")
            a = np.asarray(inputs[spec["name"]], np.float32)   # a 0-d array stays 0-d
            if list(a.shape) != spec["shape"]:
                raise ShapeError(f"input {spec['name']!r} has shape {list(a.shape)}, the model was "
                                 f"compiled for {spec['shape']}", hint="compile with input_shapes")
            if "quantize" in spec:   # an integer port: the model's QuantizeLinear, on the host
                a = quantize_port(a, spec["quantize"])
            if spec.get("layout") == "NHWC":   # the port takes pixels with their channels
                a = a.transpose(0, 2, 3, 1)
            a = np.ascontiguousarray(a.reshape(-1))
            keep.append(a)
            args.append(a.ctypes.data_as(ctypes.c_void_p))
        outs = {}
        for spec in self.manifest["outputs"]:
            o = np.zeros(spec["shape"], np.float32)
            outs[spec["name"]] = o
            args.append(o.ctypes.data_as(ctypes.c_void_p))
        self._fn(*args)
        for spec in self.manifest["outputs"]:
            if "dequantize" in spec:   # an integer port: the model's DequantizeLinear
                outs[spec["name"]] = dequantize_port(outs[spec["name"]], spec["dequantize"])
        return outs


def quantize_port(x: np.ndarray, q: Mapping[str, Any]) -> np.ndarray:
    """The QuantizeLinear that ``passes/qdq_integer.integer_ports`` moved out of the design,
    as the C back end computes it: ``saturate(round_half_even(x / scale) + zp)`` in float32
    (NaN to the type's minimum). ``x`` float32; returns the integers as float32 (exact)."""
    info = np.iinfo(np.dtype(q["dtype"]))
    v = np.rint(np.asarray(x, np.float32) / np.float32(q["scale"])) + np.float32(q["zero_point"])
    return np.fmin(np.fmax(v, np.float32(info.min)), np.float32(info.max)).astype(np.float32)


def dequantize_port(y: np.ndarray, q: Mapping[str, Any]) -> np.ndarray:
    """The DequantizeLinear moved out of the design: ``(float(y) - float(zp)) * scale`` in
    float32, as the C back end computes it. ``y`` holds the port's integers (float32)."""
    return ((np.asarray(y, np.float32) - np.float32(q["zero_point"])) *
            np.float32(q["scale"])).astype(np.float32)


def find_project(folder: Path) -> dict:
    """The manifest of the HLS project in ``folder`` (the ``<m>.json`` onnxcc wrote with
    ``"backend": "hls"``). Raises BuildError when there is none or more than one."""
    import json

    found = []
    for p in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("backend") == "hls" and \
                p.name == f"{data.get('c_prefix')}.json":
            found.append(data)
    if len(found) != 1:
        raise BuildError(f"{folder} holds {len(found)} onnxcc HLS projects, not one",
                         hint="give the folder that `onnxcc compile --target <fpga part>` wrote")
    return found[0]


_TESTBENCHES: dict[str, tuple[Path, str]] = {}   # sources' hash -> (executable, g++'s output)


def _testbench(folder: Path, m: str, cxx: str, threads: bool) -> tuple[Path, str]:
    """The built test bench of the project in ``folder`` and g++'s output, built once per
    process for the same sources, compiler and mode (a kept temporary folder)."""
    import atexit
    import hashlib

    h = hashlib.sha256(f"{cxx}\0{threads}\0{ap_include_dir()}".encode())
    files = sorted((Path(folder) / "firmware").rglob("*")) + [Path(folder) / f"{m}_test.cpp"]
    for f in files:
        if f.is_file():
            h.update(str(f.relative_to(folder)).encode() + b"\0" + f.read_bytes() + b"\0")
    key = h.hexdigest()
    if key in _TESTBENCHES and _TESTBENCHES[key][0].is_file():
        return _TESTBENCHES[key]
    tmp = tempfile.mkdtemp(prefix="onnxcc_tb_")
    atexit.register(shutil.rmtree, tmp, True)
    exe = Path(tmp) / f"{m}_tb"
    cmd = [cxx, "-std=c++14", "-O0", "-Wall", "-Wextra", "-isystem", str(ap_include_dir()),
           "-I", str(folder), str(Path(folder) / "firmware" / f"{m}.cpp"),
           str(Path(folder) / f"{m}_test.cpp"), "-o", str(exe)]
    if threads:
        cmd[1:1] = ["-DONNXCC_CSIM_THREADS", "-pthread"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError(f"the test bench of {m} did not build:\n{r.stderr[-4000:]}",
                         hint="recompile the project with onnxcc (a hand-edited file?); if "
                         "it persists, report it with the model")
    _TESTBENCHES[key] = (exe, r.stderr)
    return exe, r.stderr


def run_testbench(folder: Path, *, cxx: str | None = None, threads: bool = False,
                  deadlock_seconds: int = 10,
                  depths: Mapping[str, int] | None = None) -> tuple[bool, str]:
    """C-simulation of the project in ``folder`` with g++: builds ``<m>_test.cpp`` with the
    design (once per process for the same sources) and runs it in the folder (it compares the
    design with ``tb_data``). Returns (passed, its output, g++'s warnings first). ``threads``:
    an io_stream design runs its DATAFLOW processes concurrently on FIFOs of their pragmas'
    depths (``-DONNXCC_CSIM_THREADS``, see ``onnxcc_stream.h``), so a FIFO too shallow for the
    design fails the run, naming the stream, after ``deadlock_seconds`` without progress;
    ``depths`` (stream name, or ``*`` for all, -> elements) replaces those depths for this run
    without a rebuild. Raises BuildError when the build fails."""
    m = find_project(folder)["c_prefix"]
    cxx = cxx or os.environ.get("CXX") or "g++"
    exe, warnings = _testbench(Path(folder), m, cxx, threads)
    env = dict(os.environ, ONNXCC_DEADLOCK_SECONDS=str(int(deadlock_seconds)))
    env.pop("ONNXCC_CSIM_DEPTHS", None)
    if depths:
        env["ONNXCC_CSIM_DEPTHS"] = ",".join(f"{k}={int(v)}" for k, v in depths.items())
    run = subprocess.run([str(exe)], cwd=folder, capture_output=True, text=True, timeout=3600,
                         env=env)
    return run.returncode == 0, warnings + run.stdout + run.stderr


def vitis_build(folder: Path, *, csim: bool, synth: bool, cosim: bool, export: bool) -> int:
    """Run ``vitis_hls -f build_prj.tcl`` in ``folder`` with the chosen steps; returns its exit
    status. Raises BuildError when vitis_hls is not on the PATH."""
    exe = shutil.which("vitis_hls")
    if exe is None:
        raise BuildError("vitis_hls is not on the PATH", hint="source Vitis HLS's settings64.sh")
    args = [f"csim={int(csim)}", f"synth={int(synth)}", f"cosim={int(cosim)}",
            f"export={int(export)}"]
    return subprocess.run([exe, "-f", "build_prj.tcl", "-tclargs", *args], cwd=folder).returncode


def parse_csynth(path: Path) -> dict[str, float]:
    """The totals of a Vitis HLS synthesis report ``<m>_csynth.xml`` (in
    ``<m>_prj/solution1/syn/report/``): ``latency`` and ``interval`` in cycles (best case),
    ``clock_ns`` (estimated period), ``dsp`` (``DSP`` or ``DSP48E``), ``bram18``, ``lut``,
    ``ff``. Raises BuildError when the file is missing or not such a report."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise BuildError(f"cannot read the synthesis report {path}: {e}",
                         hint="run `onnxcc hls build DIR --synth` with vitis_hls on the PATH") from e

    def num(xpath: str) -> float:
        node = root.find(xpath)
        if node is None or node.text is None:
            raise BuildError(f"{path} has no {xpath}", hint="is it a Vitis HLS csynth.xml?")
        try:
            return float(node.text)
        except ValueError:
            return float("nan")   # "undef" for a latency Vitis could not bound

    res = root.find("./AreaEstimates/Resources")
    if res is None:
        raise BuildError(f"{path} has no AreaEstimates/Resources", hint="is it a csynth.xml?")
    dsp_tag = "DSP" if res.find("DSP") is not None else "DSP48E"
    return {"latency": num("./PerformanceEstimates/SummaryOfOverallLatency/Best-caseLatency"),
            "interval": num("./PerformanceEstimates/SummaryOfOverallLatency/Interval-min"),
            "clock_ns": num("./PerformanceEstimates/SummaryOfTimingAnalysis/EstimatedClockPeriod"),
            "dsp": num(f"./AreaEstimates/Resources/{dsp_tag}"),
            "bram18": num("./AreaEstimates/Resources/BRAM_18K"),
            "lut": num("./AreaEstimates/Resources/LUT"),
            "ff": num("./AreaEstimates/Resources/FF")}


def synthesis_table(manifest: dict, synth: dict[str, float]) -> str:
    """onnxcc's estimates beside the synthesis report's numbers, one row per quantity."""
    est = manifest["estimates"]["total"]
    rows = [("", "onnxcc estimate", "Vitis HLS csynth")]
    for key, label in (("latency", "latency (cycles)"), ("ii", "interval (cycles)"),
                       ("dsp", "DSP"), ("bram18", "BRAM18"), ("lut", "LUT"), ("ff", "FF")):
        got = synth["interval" if key == "ii" else key]
        rows.append((label, f"{est[key]:,}", "undef" if got != got else f"{int(got):,}"))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{a.ljust(w[0])}  {b.rjust(w[1])}  {c.rjust(w[2])}" for a, b, c in rows)
