"""The chapter's demo runs on 2 local gloo workers and reports the bytes each experiment sent."""

from __future__ import annotations

import pytest

from minidiff.distributed import demo, run_workers

pytestmark = pytest.mark.distributed


def test_demo_runs_on_two_workers_and_counts_bytes(capsys):
    result = run_workers(demo._local_worker, 2, 10)[0]
    assert result["ddp_muon"]["muon_allgather_bytes"] > 0 and result["ddp_muon"]["ddp_allreduce_bytes"] > 0
    onebit = result["onebit_adam"]
    assert 0 < onebit["bytes_sent"] < onebit["bytes_uncompressed"]
    demo._report(result, 2)
    assert "1-bit Adam" in capsys.readouterr().out
