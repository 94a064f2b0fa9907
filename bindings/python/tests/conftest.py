# SPDX-License-Identifier: MIT
"""Fixtures for the binding's tests: the package from this source tree, a
live discd (tests/harness/discd_proc.py) with instances registered through
discctl. ctest sets DISC_BUILD_DIR, DISC_SOURCE_DIR and DISCSHM_LIBRARY."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # bindings/python: the discshm package
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tests", "harness"))

from discd_proc import Discd  # noqa: E402


@pytest.fixture(scope="module")
def discd():
    with Discd("pybind") as d:
        yield d
