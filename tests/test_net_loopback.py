"""asyncio tests on loopback: our SCU against our SCP, and every failure a user can meet."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pydicom
import pytest

from harmony_dimse.net.association import associate, connect
from harmony_dimse.net.errors import (
    AssociationAborted,
    AssociationRejected,
    DicomTimeout,
    DimseFailure,
    NegotiationError,
    PeerUnreachable,
)
from harmony_dimse.net.server import SCPHandlers, serve
from tests.corpus import make_instance, pydicom_test_files, write_corpus
from tests.peers import free_port


async def test_echo_and_release(tmp_path: Path) -> None:
    server = await serve("127.0.0.1", 0, ae_title="SCP", storage_dir=tmp_path)
    async with server:
        async with connect("127.0.0.1", server.port, called_aet="SCP") as assoc:
            for _ in range(3):
                status = await assoc.echo()
                assert status.code == 0 and status.category == "success"
        assert not assoc.is_open
        await asyncio.sleep(0)
        assert assoc.link.transport is None or assoc.link.transport.is_closing()


async def test_store_writes_part10_then_answers(tmp_path: Path) -> None:
    received = tmp_path / "in"
    files = write_corpus(tmp_path / "out", [make_instance(1, 1, 1, i) for i in range(3)])
    files += pydicom_test_files()
    server = await serve("127.0.0.1", 0, ae_title="SCP", storage_dir=received)
    async with server, connect("127.0.0.1", server.port, called_aet="SCP", datasets=files) as assoc:
        for f in files:
            status = await assoc.store(f)
            assert status.category == "success"
            # stored means on disk: the file must be there as soon as the answer is
            uid = str(pydicom.dcmread(f).SOPInstanceUID)
            assert (received / f"{uid}.dcm").exists()
    for f in files:
        original = pydicom.dcmread(f)
        copy = pydicom.dcmread(received / f"{original.SOPInstanceUID}.dcm")
        assert copy.PatientName == original.PatientName
        assert copy.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert copy.PixelData == original.PixelData
    assert not list(received.glob("*.tmp*"))


async def test_store_pydicom_dataset(tmp_path: Path) -> None:
    ds = make_instance(2, 1, 1, 1)
    server = await serve("127.0.0.1", 0, ae_title="SCP", storage_dir=tmp_path)
    async with server, connect("127.0.0.1", server.port, called_aet="SCP", datasets=[ds]) as assoc:
        await assoc.store(ds)
    assert pydicom.dcmread(tmp_path / f"{ds.SOPInstanceUID}.dcm").PatientID == ds.PatientID


async def test_store_failure_status_is_reported(tmp_path: Path) -> None:
    async def refuse(inst: object, assoc: object) -> int:
        return 0xA700

    ds = make_instance(3, 1, 1, 1)
    server = await serve("127.0.0.1", 0, ae_title="SCP", handlers=SCPHandlers(store=refuse))
    async with server, connect("127.0.0.1", server.port, called_aet="SCP", datasets=[ds]) as assoc:
        with pytest.raises(DimseFailure) as err:
            await assoc.store(ds)
        assert err.value.status == 0xA700
        assert "Out of Resources" in str(err.value) or "out of resources" in str(err.value).lower()
        assert (await assoc.echo()).code == 0  # the association survives a failure status


async def test_connection_refused() -> None:
    port = free_port()
    with pytest.raises(PeerUnreachable) as err:
        await associate("127.0.0.1", port, called_aet="X")
    assert "refused" in str(err.value).lower()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"called_aet": "WRONG"}, "called AE title not recognized"),
        ({"called_aet": "SCP", "calling_aet": "INTRUDER"}, "calling AE title not recognized"),
    ],
)
async def test_rejections_say_why(kwargs: dict[str, str], words: str) -> None:
    server = await serve(
        "127.0.0.1", 0, ae_title="SCP", allowed_calling_aets={"FRIEND", "HARMONY_SCU"}
    )
    async with server:
        with pytest.raises(AssociationRejected) as err:
            await associate("127.0.0.1", server.port, **kwargs)
    assert words in str(err.value)
    assert err.value.result == 1 and err.value.source == 1


async def test_silent_peer_acse_timeout() -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 20)
        await asyncio.sleep(5)

    srv = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    async with srv:
        with pytest.raises(DicomTimeout) as err:
            await associate("127.0.0.1", port, called_aet="X", acse_timeout=0.3)
    assert err.value.timer == "acse"
    assert "association" in str(err.value)


async def test_peer_closing_during_negotiation_is_an_abort() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(10)
        writer.close()

    srv = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    async with srv:
        with pytest.raises(AssociationAborted):
            await associate("127.0.0.1", port, called_aet="X", acse_timeout=2)


async def test_dimse_timeout_names_the_timer(tmp_path: Path) -> None:
    gate = asyncio.Event()

    async def slow(inst: object, assoc: object) -> int:
        await gate.wait()
        return 0

    ds = make_instance(4, 1, 1, 1)
    server = await serve("127.0.0.1", 0, ae_title="SCP", handlers=SCPHandlers(store=slow))
    async with server:
        assoc = await associate(
            "127.0.0.1", server.port, called_aet="SCP", datasets=[ds], dimse_timeout=0.2
        )
        with pytest.raises(DicomTimeout) as err:
            await assoc.store(ds)
        assert err.value.timer == "dimse"
        assert "C-STORE" in str(err.value)
        assert not assoc.is_open  # a timed-out association is aborted, never reused
        gate.set()


async def test_no_context_for_sop_class(tmp_path: Path) -> None:
    ds = make_instance(5, 1, 1, 1)
    server = await serve("127.0.0.1", 0, ae_title="SCP", storage_dir=tmp_path)
    async with server, connect("127.0.0.1", server.port, called_aet="SCP") as assoc:
        with pytest.raises(NegotiationError):
            await assoc.store(ds)


async def test_peer_abort_reaches_waiting_operation() -> None:
    gate = asyncio.Event()

    async def abort_instead(inst: object, scp_assoc: object) -> int:
        scp_assoc.link.abort()  # type: ignore[attr-defined]
        await gate.wait()
        return 0

    ds = make_instance(6, 1, 1, 1)
    server = await serve("127.0.0.1", 0, ae_title="SCP", handlers=SCPHandlers(store=abort_instead))
    async with server:
        assoc = await associate("127.0.0.1", server.port, called_aet="SCP", datasets=[ds])
        with pytest.raises(AssociationAborted) as err:
            await assoc.store(ds)
        assert "aborted" in str(err.value)
        gate.set()


async def test_large_instance_fragments_over_small_pdu(tmp_path: Path) -> None:
    ds = make_instance(7, 1, 1, 1, rows=512, cols=512)
    server = await serve("127.0.0.1", 0, ae_title="SCP", storage_dir=tmp_path, max_pdu=16384)
    async with (
        server,
        connect("127.0.0.1", server.port, called_aet="SCP", datasets=[ds], max_pdu=8192) as assoc,
    ):
        assert assoc.peer_max_pdu == 16384
        await assoc.store(ds)
    assert pydicom.dcmread(tmp_path / f"{ds.SOPInstanceUID}.dcm").PixelData == ds.PixelData


async def test_concurrent_associations(tmp_path: Path) -> None:
    server = await serve("127.0.0.1", 0, ae_title="SCP", storage_dir=tmp_path)

    async def one(i: int) -> None:
        ds = make_instance(10 + i, 1, 1, 1)
        async with connect("127.0.0.1", server.port, called_aet="SCP", datasets=[ds]) as assoc:
            await assoc.echo()
            await assoc.store(ds)

    async with server:
        await asyncio.gather(*(one(i) for i in range(8)))
    assert len(list(tmp_path.glob("*.dcm"))) == 8


async def test_network_idle_timeout_on_the_scu_names_the_timer() -> None:
    gate = asyncio.Event()

    async def silent(inst: object, assoc: object) -> int:
        await gate.wait()
        return 0

    ds = make_instance(20, 1, 1, 1)
    server = await serve("127.0.0.1", 0, ae_title="SCP", handlers=SCPHandlers(store=silent))
    async with server:
        assoc = await associate(
            "127.0.0.1",
            server.port,
            called_aet="SCP",
            datasets=[ds],
            dimse_timeout=10,
            network_timeout=0.3,
        )
        with pytest.raises(DicomTimeout) as err:
            await assoc.store(ds)
        assert err.value.timer == "network"
        assert not assoc.is_open
        gate.set()


async def test_scp_drops_idle_associations() -> None:
    server = await serve("127.0.0.1", 0, ae_title="SCP", network_timeout=0.2)
    async with server:
        assoc = await associate("127.0.0.1", server.port, called_aet="SCP")
        await asyncio.wait_for(assoc.link.closed, 5)
        assert not assoc.is_open
        with pytest.raises(AssociationAborted):
            await assoc.echo()


async def test_mapping_queries_are_checked_before_sending() -> None:
    from harmony_dimse.data.query import QueryError

    server = await serve("127.0.0.1", 0, ae_title="SCP")
    async with server, connect("127.0.0.1", server.port, called_aet="SCP") as assoc:
        with pytest.raises(QueryError) as err:
            async for _ in assoc.find({"PatientNam": "DOE*"}, level="STUDY"):
                pass
        assert "PatientNam" in str(err.value)
        assert (await assoc.echo()).code == 0  # nothing was sent; the association is fine
