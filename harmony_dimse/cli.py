"""Command line: harmony-dimse serve | echo | find | move | get | store | scp | pacs."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from .net.association import connect
from .net.contexts import COMMON_STORAGE_SOP_CLASSES
from .net.errors import DicomError
from .pacs import cli as pacs_cli

EXIT_DICOM_ERROR = 1


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("host", help="peer host name or address")
    p.add_argument("port", type=int, help="peer port")
    p.add_argument("-aet", "--calling-aet", default="HARMONY_SCU", help="our AE title")
    p.add_argument("-aec", "--called-aet", default="ANY-SCP", help="the peer's AE title")
    p.add_argument("--max-pdu", type=int, default=4 * 1024 * 1024, help="max PDU we accept")
    p.add_argument(
        "-to", "--connect-timeout", type=float, default=10.0, help="TCP connect timeout, s"
    )
    p.add_argument("-ta", "--acse-timeout", type=float, default=30.0, help="association timeout, s")
    p.add_argument(
        "-td", "--dimse-timeout", type=float, default=60.0, help="DIMSE response timeout, s"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log protocol steps")


def _query(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-k",
        "--key",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="query key: keyword or gggg,eeee tag; no '=' or empty value: return key",
    )
    p.add_argument("-L", "--level", default=None, help="PATIENT, STUDY, SERIES or IMAGE")
    root = p.add_mutually_exclusive_group()
    root.add_argument("-S", "--study-root", dest="model", action="store_const", const="STUDY")
    root.add_argument("-P", "--patient-root", dest="model", action="store_const", const="PATIENT")
    p.set_defaults(model="STUDY")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harmony-dimse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the HTTP-to-DICOM gateway")
    p.add_argument("--config", "-c", default="config.toml", help="config.toml (Harmony's schema)")
    p.add_argument(
        "--workers", type=int, default=None, help="processes sharing the port (SO_REUSEPORT)"
    )

    p = sub.add_parser("echo", help="C-ECHO (verification)")
    _common(p)
    p.add_argument("--repeat", type=int, default=1, help="echoes on the one association")

    p = sub.add_parser("find", help="C-FIND; prints each match as one DICOM JSON line")
    _common(p)
    _query(p)
    p.add_argument("--repeat", type=int, default=1, help="run the query N times on one association")

    p = sub.add_parser("move", help="C-MOVE to a destination AE")
    _common(p)
    _query(p)
    p.add_argument("-aem", "--move-destination", required=True, help="destination AE title")

    p = sub.add_parser("get", help="C-GET into a folder")
    _common(p)
    _query(p)
    p.add_argument("-od", "--output-directory", default=".", help="where received files go")

    p = sub.add_parser("store", help="C-STORE Part 10 files (folders are searched recursively)")
    _common(p)
    p.add_argument("files", nargs="+", help="files or folders")

    p = sub.add_parser("scp", help="echo + storage SCP writing received instances to a folder")
    p.add_argument("--aet", default="HARMONY_SCP", help="our AE title")
    p.add_argument("--port", type=int, default=11112)
    p.add_argument("--host", default="0.0.0.0", help="address to listen on")
    p.add_argument("--storage", default="./received", help="folder for received instances")
    p.add_argument(
        "--allow",
        action="append",
        default=None,
        metavar="AET",
        help="allowed calling AE (repeatable)",
    )
    p.add_argument("--any-called-aet", action="store_true", help="accept any called AE title")
    p.add_argument("-v", "--verbose", action="store_true")

    p = sub.add_parser("pacs", help="embedded PACS: Q/R SCP over a folder (see its --help)")
    pacs_cli.add_arguments(p)
    return parser


def parse_keys(keys: Sequence[str]) -> dict[str, Any]:
    query: dict[str, Any] = {}
    for item in keys:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not name:
            raise ValueError(f"-k {item!r}: empty key")
        query[name] = value if sep else ""
    return query


def _identifier(args: argparse.Namespace, operation: str) -> Any:
    from .data.query import build_identifier

    return build_identifier(parse_keys(args.key), args.level, model=args.model, operation=operation)


def _assoc_kwargs(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    return dict(
        called_aet=args.called_aet,
        calling_aet=args.calling_aet,
        max_pdu=args.max_pdu,
        connect_timeout=args.connect_timeout,
        acse_timeout=args.acse_timeout,
        dimse_timeout=args.dimse_timeout,
        **extra,
    )


async def cmd_echo(args: argparse.Namespace) -> int:
    async with connect(args.host, args.port, **_assoc_kwargs(args)) as assoc:
        start = time.perf_counter()
        for _ in range(args.repeat):
            status = await assoc.echo()
        elapsed = time.perf_counter() - start
    print(
        f"C-ECHO {args.called_aet}@{args.host}:{args.port}: {status} "
        f"({args.repeat} in {elapsed * 1000:.1f} ms)"
    )
    return 0


async def cmd_find(args: argparse.Namespace) -> int:
    from .data.dicomjson import dataset_bytes_to_json

    identifier = _identifier(args, "C-FIND")
    count = 0
    async with connect(args.host, args.port, **_assoc_kwargs(args)) as assoc:
        for i in range(args.repeat):
            async for result in assoc.find_raw(identifier, model=args.model):
                count += 1
                if i == 0:
                    implicit = result.transfer_syntax == "1.2.840.10008.1.2"
                    obj = dataset_bytes_to_json(result.data, implicit_vr=implicit)
                    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    print(f"# {count} match(es)", file=sys.stderr)
    return 0


async def cmd_move(args: argparse.Namespace) -> int:
    identifier = _identifier(args, "C-MOVE")
    async with connect(args.host, args.port, **_assoc_kwargs(args)) as assoc:
        async for p in assoc.move(identifier, args.move_destination, model=args.model):
            if args.verbose or p.final:
                print(
                    f"C-MOVE {p.status}: remaining={p.remaining} completed={p.completed} "
                    f"failed={p.failed} warning={p.warning}"
                )
            if p.final and p.failed_instances:
                print("failed: " + " ".join(p.failed_instances))
    return 0


async def cmd_get(args: argparse.Namespace) -> int:
    identifier = _identifier(args, "C-GET")
    out = Path(args.output_directory)
    kwargs = _assoc_kwargs(args, get_storage_classes=COMMON_STORAGE_SOP_CLASSES)
    async with connect(args.host, args.port, **kwargs) as assoc:
        async for p in assoc.get(identifier, model=args.model, folder=out):
            for inst in p.received:
                if args.verbose:
                    print(f"received {inst.path}")
            if p.final:
                print(
                    f"C-GET {p.status}: completed={p.completed} failed={p.failed} "
                    f"warning={p.warning} into {out}"
                )
    return 0


def _expand(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"{name}: no such file or folder")
    return files


async def cmd_store(args: argparse.Namespace) -> int:
    from .data.files import DataFileError, read_part10

    files, skipped = [], 0
    for path in _expand(args.files):
        try:
            read_part10(path)
            files.append(path)
        except DataFileError as exc:
            print(f"skipped {exc}", file=sys.stderr)
            skipped += 1
    if not files:
        print("harmony-dimse: error: no DICOM files to send", file=sys.stderr)
        return EXIT_DICOM_ERROR
    failed = 0
    start = time.perf_counter()
    async with connect(args.host, args.port, **_assoc_kwargs(args, datasets=files)) as assoc:
        for path in files:
            try:
                status = await assoc.store(path)
                if args.verbose:
                    print(f"{path}: {status}")
            except DicomError as exc:
                if not assoc.is_open:
                    raise
                print(f"{path}: {exc}", file=sys.stderr)
                failed += 1
    elapsed = time.perf_counter() - start
    print(
        f"C-STORE: {len(files) - failed} stored, {failed} failed, {skipped} skipped "
        f"in {elapsed:.2f} s"
    )
    return EXIT_DICOM_ERROR if failed else 0


async def cmd_scp(args: argparse.Namespace) -> int:
    from .net.server import serve

    server = await serve(
        args.host,
        args.port,
        ae_title=args.aet,
        storage_dir=args.storage,
        allowed_calling_aets=args.allow,
        check_called_aet=not args.any_called_aet,
    )
    print(
        f"storage SCP {args.aet} listening on {args.host}:{server.port}, writing to {args.storage}",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()
    return 0


def serve(args: argparse.Namespace) -> int:
    """The gateway, in ``--workers`` processes (default: ``[proxy] workers``)."""
    from .gateway.config import load_config, setup_logging
    from .gateway.workers import serve_workers

    config = load_config(args.config)
    setup_logging(config)
    workers = args.workers if args.workers is not None else config.proxy.workers
    return serve_workers(config, max(1, workers), run)


COMMANDS: dict[str, Callable[[argparse.Namespace], Awaitable[int]]] = {
    "echo": cmd_echo,
    "find": cmd_find,
    "move": cmd_move,
    "get": cmd_get,
    "store": cmd_store,
    "scp": cmd_scp,
    "pacs": pacs_cli.run,
}


def run(coro: Awaitable[Any]) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith("--config"):
        argv.insert(0, "serve")  # Harmony's form: harmony-dimse --config config.toml
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from .gateway.config import ConfigError

        try:
            return serve(args)
        except ConfigError as exc:
            print(f"harmony-dimse: configuration error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"harmony-dimse: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return run(COMMANDS[args.command](args))
    except KeyboardInterrupt:
        return 130
    except (DicomError, ValueError, OSError) as exc:
        print(f"harmony-dimse: error: {exc}", file=sys.stderr)
        return EXIT_DICOM_ERROR


if __name__ == "__main__":
    sys.exit(main())
