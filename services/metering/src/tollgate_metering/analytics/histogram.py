"""The latency histogram of the request analytics rollup (ADR 0017).

Fixed log-scale buckets, the same for every row, so histograms merge by adding their counts
position by position. Stored as a bigint[] of HISTOGRAM_SIZE counts (PostgreSQL positions 1..):

- position 1: latencies under LOWEST_MS (0.1 ms);
- positions 2..165: bucket k = position - 2 (0..163) holds [0.1 * 1.1^k, 0.1 * 1.1^(k+1)) ms;
- position 166: latencies of HIGHEST_MS (10 minutes) or more.

A percentile is estimated as percentile_cont is computed (linear interpolation between the two
nearest ranks), each rank's value being its bucket's geometric midpoint 0.1 * 1.1^(k + 0.5):
within sqrt(1.1) - 1 < 4.9 % of the rank's true value, so the estimate is within 4.9 % of the
exact percentile when the latencies lie between 0.1 ms and 10 minutes. Below 0.1 ms the estimate
is 0.05 ms (off by at most 0.05 ms); from 10 minutes on it is 600000 ms.
"""

import math
from collections.abc import Iterable, Sequence

LOWEST_MS = 0.1
HIGHEST_MS = 600_000.0
GROWTH = 1.1
# Regular buckets: enough for 0.1 * 1.1^REGULAR_BUCKETS > HIGHEST_MS.
REGULAR_BUCKETS = math.ceil(math.log(HIGHEST_MS / LOWEST_MS) / math.log(GROWTH))  # 164
HISTOGRAM_SIZE = REGULAR_BUCKETS + 2  # 166
# Relative error bound of an estimate, latencies between LOWEST_MS and HIGHEST_MS.
RELATIVE_ERROR = math.sqrt(GROWTH) - 1  # 0.0488

# The position (1-based) of a latency_ms expression's bucket: a SQL fragment around `{latency}`.
POSITION_SQL = (
    "CASE WHEN {latency} < 0.1 THEN 1 WHEN {latency} >= 600000 THEN 166 "
    "ELSE least(2 + floor(ln({latency} / 0.1) / ln(1.1))::int, 165) END"
)

assert REGULAR_BUCKETS == 164 and HISTOGRAM_SIZE == 166


def position(latency_ms: float) -> int:
    """The bucket position (1-based) of a latency, as POSITION_SQL computes it."""
    if latency_ms < LOWEST_MS:
        return 1
    if latency_ms >= HIGHEST_MS:
        return HISTOGRAM_SIZE
    return min(2 + math.floor(math.log(latency_ms / LOWEST_MS) / math.log(GROWTH)), 165)


def representative(position: int) -> float:
    """The value reported for the latencies of a bucket."""
    if position == 1:
        return LOWEST_MS / 2
    if position == HISTOGRAM_SIZE:
        return HIGHEST_MS
    return LOWEST_MS * GROWTH ** (position - 2 + 0.5)


def percentiles(
    cells: Iterable[tuple[int, int]], fractions: Sequence[float]
) -> tuple[float | None, ...]:
    """Estimated percentile_cont of each fraction over the (position, count) cells of a merged
    histogram; None without any count."""
    ordered = sorted((position, count) for position, count in cells if count > 0)
    total = sum(count for _, count in ordered)
    if total == 0:
        return tuple(None for _ in fractions)

    def value_at(rank: int) -> float:  # rank: 0-based, in latency order
        seen = 0
        for position, count in ordered:
            seen += count
            if rank < seen:
                return representative(position)
        raise AssertionError("rank beyond the histogram")

    estimates = []
    for fraction in fractions:
        rank = fraction * (total - 1)
        lower, upper = math.floor(rank), math.ceil(rank)
        low, high = value_at(lower), value_at(upper)
        estimates.append(low + (high - low) * (rank - lower))
    return tuple(estimates)
