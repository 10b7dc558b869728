"""The HLS back end: fixed-point types (``fixed``), their numpy reference (``reference``), the
loop-IR renderer (``render``) and the Vitis HLS project emitter (``emit``)."""
