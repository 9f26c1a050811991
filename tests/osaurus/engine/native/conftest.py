"""The native extension, for the tests of its ops."""

from __future__ import annotations

import pytest

from osaurus.engine.native import kernels, status


@pytest.fixture(scope="module")
def native():
    module = kernels()
    # `make setup` builds the extension; on Linux a missing kernel is a failure, not a skip.
    assert module is not None, status().detail
    return module
