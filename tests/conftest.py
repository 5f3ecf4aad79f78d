import os
import tempfile

import pytest

# every test run compiles into its own cache folder, so stale modules cannot hide bugs
os.environ.setdefault("ADJOINT_CACHE_DIR", tempfile.mkdtemp(prefix="adjoint-test-cache-"))


@pytest.fixture
def rng():
    import numpy as np
    return np.random.default_rng(0)
