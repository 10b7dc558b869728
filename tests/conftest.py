import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("ONNXCC_VERIFY", "1")  # the driver verifies the IR after every pass in tests

# Property tests draw the same examples on every run (CI must not pass or fail by chance);
# ONNXCC_HYPOTHESIS_RANDOM=1 explores new ones, as when hunting bugs locally.
from hypothesis import settings  # noqa: E402

settings.register_profile("onnxcc", derandomize=os.environ.get("ONNXCC_HYPOTHESIS_RANDOM") != "1",
                          deadline=None)
settings.load_profile("onnxcc")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def rng():
    return np.random.default_rng(0)
