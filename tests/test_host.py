"""The process settings of ``amia.infra.host``: threads, and freed memory kept for reuse."""

import os
import subprocess
import sys

import pytest

from amia.infra.host import retain_freed_memory, set_threads

FAULTS = """
import resource, sys, torch
if sys.argv[1] == "retain":
    from amia.infra.host import retain_freed_memory
    assert retain_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.empty(5 << 20).fill_(1.0)  # 20 MB: above glibc's default threshold for returning memory to the kernel
before = faults()
for _ in range(40):
    torch.empty(5 << 20).fill_(1.0)
print(faults() - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_retained_memory_is_reused_without_page_faults():
    default, retained = _faults("default"), _faults("retain")
    assert default > 20_000  # the 20 MB blocks fault their pages in again (40 blocks: 46,077 faults here)
    # retained: the first one or two blocks fault (5,120 pages each), the other allocations reuse them
    assert retained <= 3 * 5120 and retained < default / 4
    assert retain_freed_memory()  # and setting it twice is harmless


def test_threads_follow_the_argument_then_omp_num_threads(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        set_threads(0)
        assert torch.get_num_threads() == 1
        set_threads(2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
