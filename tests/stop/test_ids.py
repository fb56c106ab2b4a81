"""The record of ids already seen: exact, and compact for the platform's ULIDs."""

from __future__ import annotations

import random
import time
import tracemalloc

from frontoffice_async._stop.ids import SeenIds, ulid_value

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulids(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return ["0" + "".join(rng.choices(CROCKFORD, k=25)) for _ in range(n)]


def test_ulid_value_is_the_number_the_id_spells() -> None:
    assert ulid_value("0" * 26) == 0
    assert ulid_value("0" * 25 + "Z") == 31
    assert ulid_value("7" + "Z" * 25) == 2**128 - 1
    for not_a_ulid in ("8" + "0" * 25, "0" * 25 + "I", "0" * 25 + "z", "0" * 25, "0" * 27):
        assert ulid_value(not_a_ulid) is None


def test_membership_is_exact_across_flushes() -> None:
    seen = SeenIds()
    ids = ulids(140_000)  # more than two batches frozen
    assert all(seen.add(i) for i in ids)
    assert not any(seen.add(i) for i in ids[::7])  # old and recent ones alike
    twins = [i[:-1] + ("0" if i[-1] != "0" else "1") for i in ids[:1000]]
    known = set(ids)
    fresh = [t for t in twins if t not in known]
    assert all(seen.add(t) for t in fresh)  # one digit apart: new


def test_ids_of_other_shapes_stay_apart() -> None:
    seen = SeenIds()
    ulid = "01K2PF9XS29WN4JZRHMCTTQYJB"
    others: list[object] = [ulid.lower(), "01K2PF9XS29WN4JZRHMCTTQYJI", 0, "0", ["list"]]
    assert seen.add(ulid)
    assert all(seen.add(o) for o in others)  # the list is unhashable: never a duplicate
    assert not seen.add(ulid) and not seen.add(ulid.lower()) and not seen.add(0)


def test_a_hundred_thousand_ulids_take_a_few_mebibytes() -> None:
    ids = ulids(100_000)
    tracemalloc.start()
    try:
        seen = SeenIds()
        for order_id in ids:
            seen.add(order_id)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 7 * 2**20  # a set of the strings would be about 11 MiB


def test_ids_that_share_their_high_bits_are_still_found_quickly() -> None:
    # A monotonic ULID generator counts up within one millisecond: the ids differ only in
    # their last characters, so their high 64 bits are all equal.
    ids = [f"01K2PF9XS2{i:016d}" for i in range(150_000)]
    seen = SeenIds()
    started = time.perf_counter()
    assert all(seen.add(i) for i in ids)
    assert not any(seen.add(i) for i in ids[::50])
    assert time.perf_counter() - started < 5.0  # a linear scan per id took minutes
