"""The server process's collector policy: old objects are frozen, yet cyclic garbage is reclaimed."""

import asyncio
import gc
import weakref

from zkpy.server.gc_policy import FreezeOldObjects


class _Cyclic:
    def __init__(self) -> None:
        self.me = self


def test_old_cycles_are_skipped_by_collections_until_the_full_pass_reclaims_them():
    async def scenario() -> tuple[bool, bool, int]:
        loop = asyncio.get_running_loop()
        policy = FreezeOldObjects(freeze_every=0.02, full_every=0.5)
        policy.start(loop)
        try:
            garbage = _Cyclic()
            alive = weakref.ref(garbage)
            await asyncio.sleep(0.1)  # it lives through a freeze
            frozen = gc.get_freeze_count()
            del garbage
            gc.collect()  # a full collection skips the permanent generation
            kept_while_frozen = alive() is not None
            await asyncio.sleep(0.8)  # the policy's full pass comes round
            return kept_while_frozen, alive() is None, frozen
        finally:
            policy.stop()

    kept_while_frozen, reclaimed, frozen = asyncio.run(scenario())
    assert frozen > 0, "nothing was frozen"
    assert kept_while_frozen, "an old object was scanned although frozen"
    assert reclaimed, "cyclic garbage among old objects was never reclaimed (a leak)"
    assert gc.get_freeze_count() == 0, "stop() must leave the collector as it found it"


def test_loading_a_tree_pauses_the_collector_and_gives_back_its_state():
    """Snapshot loads and log replay run without the cyclic GC (it rescanned the growing heap
    again and again), and leave it as it was, even when the load fails."""
    import pytest

    from zkpy.storage.snapshot import SnapshotInvalid, collector_paused, load_snapshot

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(SnapshotInvalid):
        load_snapshot("broken", b"not a snapshot")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled(), "a collector the user turned off was turned on"
    finally:
        gc.enable()
