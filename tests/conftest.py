import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("ONNXCC_VERIFY", "1")  # the driver verifies the IR after every pass in tests
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def rng():
    return np.random.default_rng(0)
