"""Every cell of ``--ldmatrix MATRIX`` is one test here (see harness/pytest_plugin.py).

    pytest tests/test_matrix.py --ldmatrix matrices/seed.yaml [--nix-ld 1.2.2=/path/to/nix-ld]
"""

from __future__ import annotations

import pytest

from harness.model import CellResult
from harness.pytest_plugin import assert_expected

pytestmark = pytest.mark.slow


def test_cell(ldmatrix_result: CellResult) -> None:
    assert_expected(ldmatrix_result)
