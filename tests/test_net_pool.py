"""The association pool: reuse, limits, wait deadline, idle release, broken associations."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from harmony_dimse.net.contexts import COMMON_STORAGE_SOP_CLASSES
from harmony_dimse.net.errors import AssociationAborted, DimseFailure
from harmony_dimse.net.pool import AssociationPool, PoolTimeout
from harmony_dimse.net.server import SCPHandlers, serve
from harmony_dimse.pacs import PACS
from tests.corpus import make_instance, write_corpus
from tests.peers import OrthancPeer


async def test_reuses_one_association() -> None:
    server = await serve("127.0.0.1", 0, ae_title="SCP")
    async with server:
        pool = AssociationPool("127.0.0.1", server.port, called_aet="SCP", size=2)
        for _ in range(10):
            async with pool.acquire() as assoc:
                await assoc.echo()
        assert pool.opened == 1
        await pool.close()
        await asyncio.sleep(0.05)
        assert not server.associations  # released, not left open


async def test_concurrency_is_capped_by_size() -> None:
    server = await serve("127.0.0.1", 0, ae_title="SCP")
    busy = 0
    peak = 0

    async def one() -> None:
        nonlocal busy, peak
        async with pool.acquire() as assoc:
            busy += 1
            peak = max(peak, busy)
            await assoc.echo()
            await asyncio.sleep(0.01)
            busy -= 1

    async with server:
        pool = AssociationPool("127.0.0.1", server.port, called_aet="SCP", size=3)
        await asyncio.gather(*(one() for _ in range(30)))
        assert peak == 3
        assert pool.opened == 3
        await pool.close()


async def test_waiting_has_a_deadline() -> None:
    server = await serve("127.0.0.1", 0, ae_title="SCP")
    async with server:
        pool = AssociationPool("127.0.0.1", server.port, called_aet="SCP", size=1, wait_timeout=0.2)
        async with pool.acquire():
            with pytest.raises(PoolTimeout) as err:
                async with pool.acquire():
                    pass
        assert "pool_size" in str(err.value)
        await pool.close()


async def test_idle_associations_are_released() -> None:
    server = await serve("127.0.0.1", 0, ae_title="SCP")
    async with server:
        pool = AssociationPool("127.0.0.1", server.port, called_aet="SCP", idle_timeout=0.1)
        async with pool.acquire() as assoc:
            await assoc.echo()
        await asyncio.wait_for(assoc.link.closed, 3)
        assert not assoc.is_open
        async with pool.acquire() as again:
            assert again is not assoc
            await again.echo()
        await pool.close()


async def test_max_operations_rotates_associations() -> None:
    server = await serve("127.0.0.1", 0, ae_title="SCP")
    async with server:
        pool = AssociationPool("127.0.0.1", server.port, called_aet="SCP", max_operations=3)
        for _ in range(7):
            async with pool.acquire() as assoc:
                await assoc.echo()
        assert pool.opened == 3
        await pool.close()


async def test_broken_association_is_dropped_and_retried_once() -> None:
    server = await serve("127.0.0.1", 0, ae_title="SCP")
    async with server:
        pool = AssociationPool("127.0.0.1", server.port, called_aet="SCP")
        async with pool.acquire() as first:
            await first.echo()
        # the peer drops the idle association behind the pool's back
        for scp_assoc in list(server.associations):
            scp_assoc.link.abort()
        await asyncio.wait_for(first.link.closed, 3)
        status = await pool.run(lambda a: a.echo())
        assert status.code == 0
        assert pool.opened == 2
        await pool.close()


async def test_failure_status_keeps_association_but_abort_drops_it(tmp_path: Path) -> None:
    async def refuse(inst: object, a: object) -> int:
        return 0xA700

    ds = make_instance(1, 1, 1, 1)
    server = await serve("127.0.0.1", 0, ae_title="SCP", handlers=SCPHandlers(store=refuse))
    async with server:
        pool = AssociationPool("127.0.0.1", server.port, called_aet="SCP", datasets=[ds])
        with pytest.raises(DimseFailure):
            async with pool.acquire() as assoc:
                await assoc.store(ds)
        async with pool.acquire() as same:
            assert same is assoc
        with pytest.raises(AssociationAborted):
            async with pool.acquire() as assoc:
                assoc.abort()
                await assoc.echo()
        async with pool.acquire() as fresh:
            assert fresh is not assoc
            await fresh.echo()
        await pool.close()


async def test_cancelled_find_returns_a_clean_association(tmp_path: Path) -> None:
    with OrthancPeer(workdir=tmp_path / "o") as orthanc:
        write_corpus(tmp_path / "in", [make_instance(p, 1, 1, 1) for p in range(1, 4)])
        orthanc.upload_dir(tmp_path / "in")
        pool = AssociationPool("127.0.0.1", orthanc.dicom_port, called_aet="ORTHANC")
        async with pool.acquire() as assoc:
            results = assoc.find_raw({"StudyInstanceUID": ""}, level="STUDY")
            await results.__anext__()
            await results.aclose()  # C-CANCEL, drained
        assert not assoc.busy and assoc.is_open
        async with pool.acquire() as again:
            assert again is assoc
            matches = [m async for m in again.find_raw({"StudyInstanceUID": ""}, level="STUDY")]
            assert len(matches) == 3
        await pool.close()


async def test_async_operations_window_shares_one_association() -> None:
    in_flight = 0
    peak = 0
    release = asyncio.Event()

    async def slow(inst: object, a: object) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if peak >= 4:
            release.set()
        await asyncio.wait_for(release.wait(), 5)
        in_flight -= 1
        return 0

    ds = make_instance(2, 1, 1, 1)
    server = await serve("127.0.0.1", 0, ae_title="SCP", handlers=SCPHandlers(store=slow))
    async with server:
        pool = AssociationPool(
            "127.0.0.1", server.port, called_aet="SCP", size=1, datasets=[ds], async_ops=(4, 4)
        )

        async def store() -> None:
            async with pool.acquire() as assoc:
                assert assoc.max_operations_invoked == 4
                await assoc.store(ds)

        await asyncio.gather(*(store() for _ in range(4)))
        assert peak == 4  # four C-STOREs outstanding at once on the one association
        assert pool.opened == 1
        await pool.close()


async def test_concurrent_c_gets_on_a_shared_association_do_not_mix(tmp_path: Path) -> None:
    write_corpus(tmp_path / "c", [make_instance(p, 1, 1, i) for p in (1, 2) for i in range(1, 6)])
    pacs = PACS(tmp_path / "p", host="127.0.0.1", port=0)
    pacs.import_folder(tmp_path / "c")
    async with pacs:
        pool = AssociationPool(
            "127.0.0.1",
            pacs.port,
            called_aet="HARMONY_PACS",
            size=1,
            async_ops=(4, 4),
            get_storage_classes=COMMON_STORAGE_SOP_CLASSES,
        )

        async def get(p: int) -> list[str]:
            study = str(make_instance(p, 1, 1, 1).StudyInstanceUID)
            async with pool.acquire() as assoc:
                got: list[str] = []
                async for progress in assoc.get({"StudyInstanceUID": study}, level="STUDY"):
                    got += [i.sop_instance_uid for i in progress.received]
                return got

        first, second = await asyncio.gather(get(1), get(2))
        assert sorted(first) == sorted(
            str(make_instance(1, 1, 1, i).SOPInstanceUID) for i in range(1, 6)
        )
        assert sorted(second) == sorted(
            str(make_instance(2, 1, 1, i).SOPInstanceUID) for i in range(1, 6)
        )
        assert pool.opened == 1
        await pool.close()
