"""``harmony-dimse pacs``: run the embedded PACS from the command line.

Settings come from flags, else from ``--config pacs.toml``, else from defaults::

    aet = "HARMONY_PACS"        # also: host, port, storage, allow = [...], check_called_aet,
    storage = "./pacs-data"     #       fsync, max_pdu, import = ["./samples"]
    [destinations]              # C-MOVE destinations by AE title
    ORTHANC = "127.0.0.1:4242"

(the same keys may sit under a ``[pacs]`` table). ``--destination`` adds to the file's list.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PACSSettings", "add_arguments", "parse_destination", "run", "settings_from"]

DEFAULT_AET = "HARMONY_PACS"
DEFAULT_PORT = 11112
DEFAULT_STORAGE = "./pacs-data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``pacs`` subcommand's flags."""
    parser.add_argument("--config", "-c", help="TOML file with the settings below")
    parser.add_argument("--aet", help=f"our AE title (default {DEFAULT_AET})")
    parser.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--storage", help=f"folder of files and index (default {DEFAULT_STORAGE})")
    parser.add_argument(
        "--destination",
        action="append",
        default=[],
        metavar="AE=HOST:PORT",
        help="a C-MOVE destination (repeatable)",
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="DIR",
        help="import the DICOM files under DIR before serving (repeatable)",
    )
    parser.add_argument(
        "--import-only", action="store_true", help="import, print what was done and exit"
    )
    parser.add_argument(
        "--allow", action="append", default=None, metavar="AET", help="allowed calling AE"
    )
    parser.add_argument(
        "--check-called-aet",
        action="store_true",
        default=None,
        help="refuse associations whose called AE title is not ours",
    )
    parser.add_argument("--fsync", action="store_true", default=None, help="fsync each file")
    parser.add_argument("--max-pdu", type=int, help="largest PDU we accept")
    parser.add_argument("-v", "--verbose", action="store_true", help="log protocol steps")


def parse_destination(text: str) -> tuple[str, tuple[str, int]]:
    """``AE=HOST:PORT`` -> (AE, (HOST, PORT)); ValueError naming what is wrong."""
    ae, sep, address = text.partition("=")
    host, colon, port = address.rpartition(":")
    ae = ae.strip()
    if not sep or not ae or not colon or not host:
        raise ValueError(f"destination {text!r}: expected AE=HOST:PORT")
    if len(ae) > 16:
        raise ValueError(f"destination {text!r}: an AE title has at most 16 characters")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"destination {text!r}: port {port!r} is not a number") from None
    if not 0 < number < 65536:
        raise ValueError(f"destination {text!r}: port {number} is out of range")
    return ae, (host.strip("[]"), number)


@dataclass
class PACSSettings:
    aet: str = DEFAULT_AET
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    storage: Path = Path(DEFAULT_STORAGE)
    destinations: dict[str, tuple[str, int]] = field(default_factory=dict)
    imports: list[Path] = field(default_factory=list)
    allow: list[str] | None = None
    check_called_aet: bool = False
    fsync: bool = False
    max_pdu: int | None = None


def _config(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    table = data.get("pacs", data)
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [pacs] must be a table")
    return table


_KINDS = {
    str: "a string",
    int: "an integer",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


def _typed(config: dict[str, Any], key: str, kind: type, path: str) -> Any:
    value = config.get(key)
    if value is not None and (
        not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
    ):
        raise ValueError(f"{path}: {key} must be {_KINDS[kind]}")
    return value


def settings_from(args: argparse.Namespace) -> PACSSettings:
    """Flags over the config file over defaults; ValueError names a bad setting."""
    config: dict[str, Any] = {}
    path = getattr(args, "config", None) or ""
    if path:
        config = _config(path)
        known = {
            "aet", "host", "port", "storage", "destinations", "import", "allow",
            "check_called_aet", "fsync", "max_pdu",
        }  # fmt: skip
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    settings = PACSSettings()
    settings.aet = args.aet or _typed(config, "aet", str, path) or settings.aet
    settings.host = args.host or _typed(config, "host", str, path) or settings.host
    port = args.port if args.port is not None else _typed(config, "port", int, path)
    settings.port = port if port is not None else settings.port
    storage = args.storage or _typed(config, "storage", str, path)
    settings.storage = Path(storage) if storage else settings.storage
    table = _typed(config, "destinations", dict, path) or {}
    for ae, address in table.items():
        if not isinstance(address, str):
            raise ValueError(f"{path}: destinations.{ae} must be a string HOST:PORT")
        name, pair = parse_destination(f"{ae}={address}")
        settings.destinations[name] = pair
    for text in args.destination:
        name, pair = parse_destination(text)
        settings.destinations[name] = pair
    settings.imports = [Path(p) for p in _typed(config, "import", list, path) or []]
    settings.imports += [Path(p) for p in args.imports]
    allow = args.allow if args.allow is not None else _typed(config, "allow", list, path)
    settings.allow = [str(a) for a in allow] if allow is not None else None
    for flag in ("check_called_aet", "fsync"):
        value = getattr(args, flag)
        if value is None:
            value = _typed(config, flag, bool, path)
        setattr(settings, flag, bool(value))
    max_pdu = args.max_pdu if args.max_pdu is not None else _typed(config, "max_pdu", int, path)
    settings.max_pdu = max_pdu
    return settings


async def run(args: argparse.Namespace) -> int:
    """Import what was asked, then serve until interrupted (SIGINT/SIGTERM)."""
    from ..ul.pdu import DEFAULT_MAX_PDU_LENGTH
    from .server import PACS

    settings = settings_from(args)
    pacs = PACS(
        settings.storage,
        ae_title=settings.aet,
        host=settings.host,
        port=settings.port,
        destinations=settings.destinations,
        allowed_calling_aets=settings.allow,
        check_called_aet=settings.check_called_aet,
        max_pdu=settings.max_pdu or DEFAULT_MAX_PDU_LENGTH,
        fsync=settings.fsync,
    )
    try:
        for folder in settings.imports:
            report = pacs.import_folder(folder)
            print(f"import {folder}: {report}", flush=True)
        counts = pacs.index.counts()
        summary = ", ".join(f"{n} {name}" for name, n in counts.items())
        if args.import_only:
            print(f"storage {pacs.storage}: {summary}")
            return 0
        await pacs.start()
        destinations = ", ".join(
            f"{ae}={host}:{port}" for ae, (host, port) in settings.destinations.items()
        )
        print(
            f"PACS {settings.aet} listening on {settings.host}:{pacs.port};"
            f" storage {pacs.storage} ({summary});"
            f" C-MOVE destinations: {destinations or 'none'}",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        print("PACS stopping", file=sys.stderr, flush=True)
    finally:
        await pacs.close()
    return 0
