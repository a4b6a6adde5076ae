"""The upstream matrix's shards (tools.reliability.upstream.shard): every fault runs exactly once,
the shards take about the same time, and they start few proxies."""

from __future__ import annotations

import pytest

from tools.reliability.faults import upstream_faults
from tools.reliability.upstream import shard, weight


def proxies(shards) -> int:
    return sum(len({(f.upstream, f.slow) for f in s}) for s in shards)


@pytest.mark.parametrize("full", [False, True], ids=["fast", "full"])
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_each_fault_once_in_shards_of_even_time_on_few_proxies(full, count):
    faults = upstream_faults(full)
    shards = shard(faults, count)
    assert len(shards) == count
    assert sorted(f.name for s in shards for f in s) == sorted(f.name for f in faults)
    # Balanced: no shard longer than an even share plus the longest single fault.
    assert max(map(weight, shards)) <= weight(faults) / count + max(weight([f]) for f in faults)
    # The quick faults of one upstream share one proxy: no more proxies than the slow faults
    # (one each at most) and one per upstream.
    assert proxies(shards) <= sum(f.slow for f in faults) + len({f.upstream for f in faults})


def test_the_fast_matrix_on_three_shards_takes_about_its_longest_fault_on_six_proxies():
    """The fast run (`make test`): as long as its longest fault (a hang, retried) and one quick
    cell more; 6 proxies, where dealing the faults out one by one started 10."""
    faults = upstream_faults(False)
    shards = shard(faults, 3)
    assert max(map(weight, shards)) <= max(weight([f]) for f in faults) + 1
    assert proxies(shards) == 6
    assert proxies([faults[i::3] for i in range(3)]) == 10
