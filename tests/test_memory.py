"""Short-term memory: bounded capacity, retrieval by time and by key, discounted costs by hand."""

import pytest
import torch

from amia.agent.memory import ShortTermMemory


def test_memory_stays_within_capacity_over_a_100k_step_run():
    mem = ShortTermMemory(capacity=5000, state_dim=4, context_dim=2)
    episodes = 50
    for t in range(100_000 // episodes):  # 100,000 entries, written 50 at a time as an agent loop would
        s = torch.full((episodes, 4), float(t))
        mem.write(torch.arange(episodes), t, s, torch.ones(episodes), torch.zeros(episodes, 2))
        assert len(mem) <= 5000
    assert len(mem) == 5000 and mem.writes == 100_000
    assert mem.state.shape == (5000, 4)  # storage never grew
    kept = mem.entries()["t"]
    assert kept.min().item() == 100_000 // episodes - 100 and kept.max().item() == 100_000 // episodes - 1  # the newest


def test_a_write_larger_than_capacity_keeps_the_newest():
    mem = ShortTermMemory(capacity=3, state_dim=1)
    mem.write(torch.zeros(5, dtype=torch.long), torch.arange(5), torch.arange(5.0)[:, None], torch.arange(5.0))
    assert sorted(mem.entries()["t"].tolist()) == [2, 3, 4]


def test_read_by_time_and_by_key():
    mem = ShortTermMemory(capacity=10, state_dim=2)
    states = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    mem.write(torch.zeros(3, dtype=torch.long), torch.tensor([0, 1, 2]), states, torch.tensor([1.0, 2.0, 3.0]))
    mem.write(torch.zeros(1, dtype=torch.long), 3, torch.zeros(1, 2), torch.tensor([9.0]), imagined=True)
    got = mem.read_time(1, 3)
    assert sorted(got["t"].tolist()) == [1, 2]
    assert mem.read_time(0, 10, imagined=True)["cost"].tolist() == [9.0]
    # key-value retrieval (Sec. 4.9): a query at a stored key with a sharp temperature returns that key's value
    assert mem.read(torch.tensor([[10.0, 0.0]]), temperature=0.1).item() == pytest.approx(2.0)
    # halfway between two keys far from the others (two of them at the origin): the mean of those two values
    q = torch.tensor([[5.0, 5.0]])
    w = torch.softmax(-torch.cdist(q, mem.state[:4]).pow(2) / 50.0, dim=1)
    assert mem.read(q, temperature=50.0).item() == pytest.approx(float(w @ mem.cost[:4]))


def test_trajectories_sort_entries_and_cut_runs_at_gaps():
    mem = ShortTermMemory(capacity=10, state_dim=1)
    # episode 0: t = 0, 1, 5 (a gap after 1); episode 1: t = 2, 3; written out of order
    mem.write(torch.tensor([1, 0, 0]), torch.tensor([3, 5, 0]), torch.tensor([[13.0], [5.0], [0.0]]), torch.zeros(3))
    mem.write(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([[1.0], [12.0]]), torch.zeros(2))
    out = mem.trajectories()
    assert out["state"].flatten().tolist() == [0.0, 1.0, 5.0, 12.0, 13.0]
    assert out["offsets"].tolist() == [0, 2, 3, 5]  # t=5 is not t=1's successor; episode 1 starts a run


def test_bad_writes_are_clear_errors():
    mem = ShortTermMemory(capacity=4, state_dim=3, context_dim=2)
    with pytest.raises(ValueError, match=r"states of shape \(N, 3\)"):
        mem.write(torch.zeros(2, dtype=torch.long), 0, torch.zeros(2, 4), torch.zeros(2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"context of shape \(2, 2\)"):
        mem.write(torch.zeros(2, dtype=torch.long), 0, torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="capacity"):
        ShortTermMemory(0, 3)
    with pytest.raises(ValueError, match="empty"):
        mem.read(torch.zeros(1, 3))


def test_trajectories_sort_and_cut_at_episodes_gaps_and_kind():
    m = ShortTermMemory(20, 1)
    # written out of order: episode 1 at t 0..2, episode 0 at t 0..3 with t = 2 missing, one imagined entry
    m.write(torch.tensor([1, 1, 1]), torch.tensor([2, 0, 1]), torch.tensor([[12.0], [10.0], [11.0]]), torch.zeros(3))
    m.write(torch.tensor([0, 0, 0]), torch.tensor([3, 0, 1]), torch.tensor([[3.0], [0.0], [1.0]]), torch.zeros(3))
    m.write(torch.tensor([0]), torch.tensor([2]), torch.tensor([[99.0]]), torch.zeros(1), imagined=True)
    runs = m.trajectories()
    assert runs["state"].flatten().tolist() == [0.0, 1.0, 3.0, 10.0, 11.0, 12.0]
    assert runs["offsets"].tolist() == [0, 2, 3, 6]  # episode 0 splits at the missing t = 2
    assert m.trajectories(imagined=True)["state"].flatten().tolist() == [99.0]
    with pytest.raises(ValueError, match="no perceived entries"):
        ShortTermMemory(4, 1).trajectories()
