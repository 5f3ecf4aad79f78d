import os
import tempfile

import pytest

# every test run compiles into its own cache folder, so stale modules cannot hide bugs
os.environ.setdefault("ADJOINT_CACHE_DIR", tempfile.mkdtemp(prefix="adjoint-test-cache-"))
# verify the IR after every pass (read once, when adjoint.passes.pipeline is imported)
os.environ["ADJOINT_VERIFY"] = "1"


@pytest.fixture
def rng():
    import numpy as np
    return np.random.default_rng(0)
