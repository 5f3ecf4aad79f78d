import os
import shutil
import tempfile

import pytest

# every test run compiles into its own cache folder, so stale modules cannot hide bugs;
# the folder is removed when the run ends (unless the caller chose it)
_OWN_CACHE = None
if "ADJOINT_CACHE_DIR" not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="adjoint-test-cache-")
    os.environ["ADJOINT_CACHE_DIR"] = _OWN_CACHE
# verify the IR after every pass (read once, when adjoint.passes.pipeline is imported)
os.environ["ADJOINT_VERIFY"] = "1"


def pytest_sessionfinish(session, exitstatus):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture
def rng():
    import numpy as np
    return np.random.default_rng(0)
