"""Proof that the test infrastructure works: synthetic corpus, real peers, and clean teardown."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pydicom
import pytest

from tests.corpus import (
    CHARSET_PATIENT_NAMES,
    LATIN1_CHARSET,
    UTF8_CHARSET,
    make_corpus,
    make_instance,
    pydicom_test_files,
    study_instance_uid,
    write_corpus,
)
from tests.peers import (
    LOCALHOST,
    DcmQrSCP,
    DcmQrSCPFactory,
    OrthancFactory,
    OrthancPeer,
    PeerStartError,
    StoreSCP,
    StoreSCPFactory,
    echoscu,
    findscu_values,
    free_port,
    process_group_members,
    process_is_running,
    require_executable,
    run_tool,
    storescu,
)

STUDY_UID_TAG = "0020,000d"
STUDY_LEVEL_KEYS = ["QueryRetrieveLevel=STUDY", "StudyInstanceUID"]


def corpus_study_uids() -> list[str]:
    return sorted({str(ds.StudyInstanceUID) for ds in make_corpus()})


# --- corpus -------------------------------------------------------------------------------------


def test_corpus_has_the_requested_shape_and_unique_uids() -> None:
    corpus = make_corpus(patients=2, studies=2, series=2, instances=3)
    assert len(corpus) == 2 * 2 * 2 * 3 + 2
    assert len({str(ds.SOPInstanceUID) for ds in corpus}) == len(corpus)
    assert len(corpus_study_uids()) == 2 * 2 + 2
    assert all(len(str(ds.SOPInstanceUID)) <= 64 for ds in corpus)
    assert [ds.SOPInstanceUID for ds in make_corpus()] == [ds.SOPInstanceUID for ds in corpus]
    assert len({str(ds.StudyDate) for ds in corpus}) > 1


def test_secondary_capture_for_non_ct_modality() -> None:
    ds = make_instance(1, 1, 1, 1, modality="OT", rows=4, cols=8)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert len(ds.PixelData) == 4 * 8 * 2


def test_corpus_files_round_trip_with_their_character_sets(tmp_path: Path) -> None:
    paths = write_corpus(tmp_path, make_corpus(patients=1, studies=1, series=1, instances=1))
    by_charset = {}
    for path in paths:
        ds = pydicom.dcmread(path)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        by_charset[ds.get("SpecificCharacterSet")] = (ds, path.read_bytes())
    latin1_ds, latin1_bytes = by_charset[LATIN1_CHARSET]
    assert str(latin1_ds.PatientName) == CHARSET_PATIENT_NAMES[LATIN1_CHARSET]
    assert CHARSET_PATIENT_NAMES[LATIN1_CHARSET].encode("latin-1") in latin1_bytes
    utf8_ds, utf8_bytes = by_charset[UTF8_CHARSET]
    assert str(utf8_ds.PatientName) == CHARSET_PATIENT_NAMES[UTF8_CHARSET]
    assert CHARSET_PATIENT_NAMES[UTF8_CHARSET].encode("utf-8") in utf8_bytes


def test_pydicom_test_files_are_readable() -> None:
    modalities = [pydicom.dcmread(path).Modality for path in pydicom_test_files()]
    assert modalities == ["CT", "MR"]


# --- locating executables -------------------------------------------------------------------------


def test_missing_executable_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"scripts/setup\.sh"):
        require_executable("harmony-no-such-tool")


def test_missing_executable_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"scripts/setup\.sh"):
        require_executable("harmony-no-such-tool")


@pytest.mark.interop
def test_dcmtk_tools_win_over_the_venv_apps_of_pynetdicom() -> None:
    path = Path(require_executable("echoscu")).resolve()
    assert not path.is_relative_to(Path(sys.prefix).resolve())
    assert "dcmtk" in run_tool("echoscu", "--version").stdout


# --- Orthanc --------------------------------------------------------------------------------------


@pytest.mark.interop
def test_orthanc_answers_dcmtk_echo(orthanc: OrthancPeer) -> None:
    result = echoscu(orthanc.aet, orthanc.dicom_port, calling_aet="X")
    assert result.returncode == 0, result.stderr
    environ = Path(f"/proc/{orthanc.pid}/environ").read_bytes().split(b"\0")
    assert b"TCP_NODELAY=1" in environ


@pytest.mark.interop
def test_orthanc_checks_called_aet_when_asked(orthanc_factory: OrthancFactory) -> None:
    strict = orthanc_factory(aet="STRICT", check_called_aet=True)
    assert echoscu("WRONG", strict.dicom_port).returncode != 0
    assert echoscu("STRICT", strict.dicom_port).returncode == 0


@pytest.mark.interop
def test_storescu_of_the_corpus_lands_in_orthanc(
    orthanc: OrthancPeer, corpus_files: list[Path]
) -> None:
    result = storescu(corpus_files, orthanc.aet, orthanc.dicom_port)
    assert result.returncode == 0, result.stderr
    assert orthanc.count_instances() == len(corpus_files)
    assert orthanc.find_study_uids() == corpus_study_uids()
    patients = orthanc.rest_json("GET", "/patients?expand")
    names = {patient["MainDicomTags"]["PatientName"] for patient in patients}
    assert set(CHARSET_PATIENT_NAMES.values()) <= names


@pytest.mark.interop
def test_orthanc_rest_upload(orthanc: OrthancPeer, corpus_dir: Path) -> None:
    first_id = orthanc.upload(pydicom_test_files()[0])
    assert orthanc.instances() == [first_id]
    orthanc.upload(pydicom_test_files()[1].read_bytes())
    orthanc.upload_dir(corpus_dir)
    assert orthanc.count_instances() == 2 + len(list(corpus_dir.glob("*.dcm")))
    assert orthanc.rest("GET", "/no-such-route")[0] == 404


@pytest.mark.interop
def test_orthanc_stores_to_a_configured_modality(
    orthanc_factory: OrthancFactory, storescp_factory: StoreSCPFactory
) -> None:
    sink = storescp_factory(aet="SINK", ignore=False)
    orthanc = orthanc_factory(modalities={"sink": [sink.aet, LOCALHOST, sink.port]})
    instance_id = orthanc.upload(pydicom_test_files()[0])
    orthanc.rest_json("POST", "/modalities/sink/store", instance_id)
    assert len(sink.received_files()) == 1


# --- DCMTK peers ----------------------------------------------------------------------------------


@pytest.mark.interop
def test_storescp_ignore_accepts_storescu(
    storescp_ignore: StoreSCP, corpus_files: list[Path]
) -> None:
    result = storescu(corpus_files, storescp_ignore.aet, storescp_ignore.port)
    assert result.returncode == 0, result.stderr
    assert "E:" not in result.stderr
    assert storescp_ignore.received_files() == []
    assert storescu(corpus_files[:1], storescp_ignore.aet, free_port()).returncode != 0


@pytest.mark.interop
def test_storescp_output_dir_keeps_what_it_receives(
    storescp_factory: StoreSCPFactory, corpus_files: list[Path]
) -> None:
    scp = storescp_factory(ignore=False)
    assert storescu(corpus_files, scp.aet, scp.port).returncode == 0
    assert len(scp.received_files()) == len(corpus_files)


@pytest.mark.interop
def test_dcmqrscp_finds_what_storescu_sent(
    dcmqrscp_factory: DcmQrSCPFactory, corpus_files: list[Path]
) -> None:
    qr = dcmqrscp_factory()
    assert echoscu(qr.aet, qr.port).returncode == 0
    assert findscu_values(qr.aet, qr.port, STUDY_LEVEL_KEYS, STUDY_UID_TAG) == []
    qr.store_files(corpus_files)
    found = findscu_values(qr.aet, qr.port, STUDY_LEVEL_KEYS, STUDY_UID_TAG)
    assert sorted(found) == corpus_study_uids()
    one_study = study_instance_uid(1, 2)
    keys = ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={one_study}"]
    assert findscu_values(qr.aet, qr.port, keys, STUDY_UID_TAG) == [one_study]


@pytest.mark.interop
def test_dcmqrscp_indexes_files_and_moves_them_to_orthanc(
    dcmqrscp_factory: DcmQrSCPFactory, orthanc: OrthancPeer
) -> None:
    qr = dcmqrscp_factory(move_destinations={orthanc.aet: (LOCALHOST, orthanc.dicom_port)})
    ct_file = pydicom_test_files()[0]
    ct_study = str(pydicom.dcmread(ct_file).StudyInstanceUID)
    qr.index_files([ct_file])
    assert findscu_values(qr.aet, qr.port, STUDY_LEVEL_KEYS, STUDY_UID_TAG) == [ct_study]
    result = run_tool(
        "movescu", "-S", "-aet", "MOVESCU", "-aec", qr.aet, "-aem", orthanc.aet,
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={ct_study}",
        LOCALHOST, str(qr.port),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert orthanc.find_study_uids() == [ct_study]


# --- lifecycle ------------------------------------------------------------------------------------


@pytest.mark.interop
def test_stopped_peers_leave_no_process_and_no_temp_dir(corpus_files: list[Path]) -> None:
    with OrthancPeer() as orthanc, StoreSCP() as scp, DcmQrSCP() as qr:
        pids = [orthanc.pid, scp.pid, qr.pid]
        workdirs = [orthanc.workdir, scp.workdir, qr.workdir]
        assert all(process_is_running(pid) for pid in pids)
        qr.store_files(corpus_files[:1])  # a forked child served this association
    assert not any(process_is_running(pid) for pid in pids)
    assert all(process_group_members(pid) == [] for pid in pids)
    assert not any(workdir.exists() for workdir in workdirs)


@pytest.mark.interop
def test_peer_that_cannot_listen_reports_its_log(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind((LOCALHOST, 0))
        blocker.listen()
        taken_port = blocker.getsockname()[1]
        peer = StoreSCP(port=taken_port, workdir=tmp_path)
        with pytest.raises(PeerStartError, match=r"exited with code [1-9](.|\n)*last lines:\n.+"):
            peer.start()
    assert not process_is_running(peer.pid)
    assert peer.log_path.exists()
