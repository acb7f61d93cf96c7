"""Shared pytest fixtures: real peers (Orthanc, DCMTK) started per test, and a synthetic corpus."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.corpus import make_corpus, write_corpus
from tests.peers import (
    DcmQrSCP,
    DcmQrSCPFactory,
    OrthancFactory,
    OrthancPeer,
    StoreSCP,
    StoreSCPFactory,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "interop: talks to a real Orthanc or DCMTK peer; fails instead of skipping under CI=true",
    )


@pytest.fixture
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancPeer]:
    """A running Orthanc with the default configuration (AET "ORTHANC"), stopped after the test."""
    with OrthancPeer(workdir=tmp_path_factory.mktemp("orthanc")) as peer:
        yield peer


@pytest.fixture
def orthanc_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancFactory]:
    """Call with OrthancPeer keyword arguments to get a running Orthanc; all stop after the test."""
    with contextlib.ExitStack() as stack:

        def start(**kwargs: Any) -> OrthancPeer:
            kwargs.setdefault("workdir", tmp_path_factory.mktemp("orthanc"))
            return stack.enter_context(OrthancPeer(**kwargs))

        yield start


@pytest.fixture
def storescp_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreSCPFactory]:
    """Call with StoreSCP keyword arguments to get a running storescp; all stop after the test."""
    with contextlib.ExitStack() as stack:

        def start(**kwargs: Any) -> StoreSCP:
            kwargs.setdefault("workdir", tmp_path_factory.mktemp("storescp"))
            return stack.enter_context(StoreSCP(**kwargs))

        yield start


@pytest.fixture
def storescp_ignore(storescp_factory: StoreSCPFactory) -> StoreSCP:
    """A running storescp (AET "STORESCP") that accepts every C-STORE and discards the data."""
    return storescp_factory(ignore=True)


@pytest.fixture
def dcmqrscp_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DcmQrSCPFactory]:
    """Call with DcmQrSCP keyword arguments to get a running dcmqrscp; all stop after the test."""
    with contextlib.ExitStack() as stack:

        def start(**kwargs: Any) -> DcmQrSCP:
            kwargs.setdefault("workdir", tmp_path_factory.mktemp("dcmqrscp"))
            return stack.enter_context(DcmQrSCP(**kwargs))

        yield start


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding make_corpus() (default sizes: 26 Part 10 files). Do not modify it."""
    directory = tmp_path_factory.mktemp("corpus")
    write_corpus(directory, make_corpus())
    return directory


@pytest.fixture(scope="session")
def corpus_files(corpus_dir: Path) -> list[Path]:
    """The files of corpus_dir, sorted by name."""
    return sorted(corpus_dir.glob("*.dcm"))
