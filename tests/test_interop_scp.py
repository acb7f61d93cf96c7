"""Other SCUs against our SCP: DCMTK echoscu and storescu, and pynetdicom."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pydicom
import pytest

from harmony_dimse.net.server import serve
from tests.corpus import make_instance, pydicom_test_files, write_corpus
from tests.peers import echoscu, run_tool, storescu

pytestmark = pytest.mark.interop


async def test_dcmtk_echoscu(tmp_path: Path) -> None:
    server = await serve("127.0.0.1", 0, ae_title="HARMONY", storage_dir=tmp_path)
    async with server:
        result = await asyncio.to_thread(echoscu, "HARMONY", server.port)
        assert result.returncode == 0, result.stderr
        wrong = await asyncio.to_thread(echoscu, "NOT_US", server.port)
        assert wrong.returncode != 0
        assert "Called AE Title Not Recognized" in wrong.stderr + wrong.stdout


async def test_dcmtk_storescu(tmp_path: Path) -> None:
    files = pydicom_test_files() + write_corpus(
        tmp_path / "src", [make_instance(1, 1, 1, i, rows=128, cols=128) for i in range(5)]
    )
    server = await serve(
        "127.0.0.1", 0, ae_title="HARMONY", storage_dir=tmp_path / "in", max_pdu=16384
    )
    async with server:
        result = await asyncio.to_thread(storescu, files, "HARMONY", server.port)
        assert result.returncode == 0, result.stderr
    for f in files:
        original = pydicom.dcmread(f)
        copy = pydicom.dcmread(tmp_path / "in" / f"{original.SOPInstanceUID}.dcm")
        assert copy.PixelData == original.PixelData
        assert copy.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID


async def test_dcmtk_storescu_compressed_proposal(tmp_path: Path) -> None:
    # storescu -xs proposes JPEG lossless; our SCP accepts the sender's first choice it knows
    files = write_corpus(tmp_path / "src", [make_instance(2, 1, 1, 1)])
    server = await serve("127.0.0.1", 0, ae_title="HARMONY", storage_dir=tmp_path / "in")
    async with server:
        result = await asyncio.to_thread(
            run_tool, "storescu", "-aec", "HARMONY", "127.0.0.1", str(server.port), str(files[0])
        )
        assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "in").glob("*.dcm"))) == 1


def _pynetdicom_scu(port: int, datasets: list[pydicom.Dataset]) -> list[int]:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = AE(ae_title="PYNETSCU")
    ae.add_requested_context(Verification)
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="HARMONY")
    assert assoc.is_established
    statuses = [int(assoc.send_c_echo().Status)]
    for ds in datasets:
        statuses.append(int(assoc.send_c_store(ds).Status))
    assoc.release()
    return statuses


async def test_pynetdicom_scu(tmp_path: Path) -> None:
    datasets = [pydicom.dcmread(f) for f in pydicom_test_files()]
    server = await serve("127.0.0.1", 0, ae_title="HARMONY", storage_dir=tmp_path)
    async with server:
        statuses = await asyncio.to_thread(_pynetdicom_scu, server.port, datasets)
    assert statuses == [0, 0, 0]
    for ds in datasets:
        assert (tmp_path / f"{ds.SOPInstanceUID}.dcm").exists()
