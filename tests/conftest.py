"""Shared fixtures."""

import pytest
import torch


@pytest.fixture(scope="module")
def restore_threads():
    """Training sets torch's thread count (``threads=1`` in the tiny runs); give the rest of the session its own back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
