"""Route matching: endpoint path prefixes, the operation sub-path, and a root ("/") endpoint."""

from __future__ import annotations

from typing import Any, cast

from harmony_dimse.gateway.app import Gateway, Route


def _gateway(*prefixes: str) -> Gateway:
    gateway = Gateway.__new__(Gateway)
    gateway.routes = sorted(
        (Route(prefix, f"p{i}", cast(Any, f"backend{i}")) for i, prefix in enumerate(prefixes)),
        key=lambda r: len(r.prefix),
        reverse=True,
    )
    gateway._route_cache = {}
    return gateway


def _match(gateway: Gateway, path: str) -> tuple[str, str] | None:
    found = gateway.route(path)
    return None if found is None else (found[0].prefix, found[1])


def test_prefix_and_sub_paths() -> None:
    gateway = _gateway("/trigger-dicom")
    assert _match(gateway, "/trigger-dicom") == ("/trigger-dicom", "")
    assert _match(gateway, "/trigger-dicom/") == ("/trigger-dicom", "")
    assert _match(gateway, "/trigger-dicom/find") == ("/trigger-dicom", "find")
    assert _match(gateway, "/trigger-dicomx") is None
    assert _match(gateway, "/other") is None


def test_root_prefix_takes_every_path_with_its_sub_path() -> None:
    gateway = _gateway("/")
    assert _match(gateway, "/") == ("/", "")
    assert _match(gateway, "/echo") == ("/", "echo")
    assert _match(gateway, "/find/") == ("/", "find")


def test_longer_prefix_wins_over_the_root() -> None:
    gateway = _gateway("/", "/pacs")
    assert _match(gateway, "/pacs/echo") == ("/pacs", "echo")
    assert _match(gateway, "/pacsx") == ("/", "pacsx")
    assert _match(gateway, "/store") == ("/", "store")


def test_answers_are_cached_and_stay_the_same() -> None:
    gateway = _gateway("/a", "/")
    first = gateway.route("/a/find")
    assert gateway.route("/a/find") is first
    assert _match(gateway, "/nowhere") == ("/", "nowhere")
