"""Each rank's share of the global batches (distributed training)."""

from __future__ import annotations

from crnas.data.loader import EpochBatchSampler


def test_ranks_split_every_global_batch():
    n, batch, world = 11, 2, 3
    single = [i for b in EpochBatchSampler(n, batch * world, shuffle=True, seed=5, epoch=2, drop_last=False) for i, _ in b]
    ranks = [list(EpochBatchSampler(n, batch, shuffle=True, seed=5, epoch=2, drop_last=False, rank=r, world_size=world)) for r in range(world)]
    assert len({len(r) for r in ranks}) == 1 and len(ranks[0]) == 2  # ceil(11 / 6) global batches, on every rank
    assert all(len(b) == batch for r in ranks for b in r)  # the last global batch is padded by wrapping around
    merged = [i for step in zip(*ranks) for b in step for i, _ in b]
    assert merged[:n] == single and merged[n:] == single[: len(merged) - n]
    resumed = list(EpochBatchSampler(n, batch, shuffle=True, seed=5, epoch=2, drop_last=False, start_batch=1, rank=1, world_size=world))
    assert resumed == ranks[1][1:]
