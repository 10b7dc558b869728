"""The runtime: the C header shipped with every generated library (``include/onnxcc_rt.h``) and
the Python side that builds and runs a generated library (``build``)."""
