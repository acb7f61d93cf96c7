"""DIMSE client benchmark: our SCU vs pynetdicom vs DCMTK, against the same peers in the same run.

    .venv/bin/python -m benchmarks.bench_dimse [--quick] [--json out.json] [--markdown out.md]

Peers: DCMTK ``storescp --ignore`` for C-ECHO and C-STORE (fast enough not to be the limit), and
Orthanc for C-FIND (its own speed caps every client, so the row is a ratio to ``findscu --repeat``).
Every row prints operations per second and our ratio to each other client. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harmony_dimse.net.association import connect
from tests.corpus import make_instance, write_corpus
from tests.peers import OrthancPeer, StoreSCP, find_system_executable, peer_environment

LOCAL = "127.0.0.1"


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_dcmtk(name: str, *args: str) -> float:
    exe = find_system_executable(name)
    if exe is None:
        raise SystemExit(f"{name} not found: run scripts/setup.sh")
    start = time.perf_counter()
    proc = subprocess.run([exe, *args], env=peer_environment(), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed: {proc.stderr[-500:]}")
    return elapsed


def dcmtk_assoc_rate(port: int, aet: str, n: int) -> float:
    """echoscu once per association: one process each, so this row includes process start-up."""
    return n / sum(run_dcmtk("echoscu", "-aec", aet, LOCAL, str(port)) for _ in range(n))


# ------------------------------------------------------------------ our SCU


async def ours_echo(port: int, aet: str, n: int) -> float:
    async with connect(LOCAL, port, called_aet=aet) as assoc:
        await assoc.echo()
        start = time.perf_counter()
        for _ in range(n):
            await assoc.echo()
        return time.perf_counter() - start


async def ours_assoc_echo(port: int, aet: str, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        async with connect(LOCAL, port, called_aet=aet) as assoc:
            await assoc.echo()
    return time.perf_counter() - start


async def ours_find(port: int, aet: str, n: int, query: dict[str, str]) -> tuple[float, int]:
    matches = 0
    async with connect(LOCAL, port, called_aet=aet) as assoc:
        start = time.perf_counter()
        for _ in range(n):
            async for _r in assoc.find_raw(query, level="STUDY"):
                matches += 1
        return time.perf_counter() - start, matches


async def ours_store(port: int, aet: str, files: list[Path]) -> float:
    async with connect(LOCAL, port, called_aet=aet, datasets=files[:1]) as assoc:
        start = time.perf_counter()
        for f in files:
            await assoc.store(f)
        return time.perf_counter() - start


def run_async(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


# ------------------------------------------------------------------ pynetdicom


def pnd_echo(port: int, aet: str, n: int, new_assoc: bool = False) -> float:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(Verification)
    if new_assoc:
        start = time.perf_counter()
        for _ in range(n):
            assoc = ae.associate(LOCAL, port, ae_title=aet)
            assoc.send_c_echo()
            assoc.release()
        return time.perf_counter() - start
    assoc = ae.associate(LOCAL, port, ae_title=aet)
    start = time.perf_counter()
    for _ in range(n):
        assoc.send_c_echo()
    elapsed = time.perf_counter() - start
    assoc.release()
    return elapsed


def pnd_find(port: int, aet: str, n: int, query: dict[str, str]) -> float:
    from pydicom import Dataset
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND  # type: ignore[attr-defined]

    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(FIND)
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for k, v in query.items():
        setattr(ds, k, v)
    assoc = ae.associate(LOCAL, port, ae_title=aet)
    start = time.perf_counter()
    for _ in range(n):
        for _status, _ident in assoc.send_c_find(ds, FIND):
            pass
    elapsed = time.perf_counter() - start
    assoc.release()
    return elapsed


def pnd_store(port: int, aet: str, files: list[Path]) -> float:
    import pydicom
    from pynetdicom import AE

    datasets = [pydicom.dcmread(f) for f in files]
    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(datasets[0].SOPClassUID, datasets[0].file_meta.TransferSyntaxUID)
    assoc = ae.associate(LOCAL, port, ae_title=aet)
    start = time.perf_counter()
    for ds in datasets:
        assoc.send_c_store(ds)
    elapsed = time.perf_counter() - start
    assoc.release()
    return elapsed


# ------------------------------------------------------------------ the table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few iterations (CI smoke run)")
    parser.add_argument("--json", type=Path, help="write results as JSON")
    parser.add_argument("--markdown", type=Path, help="write the table as Markdown")
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    n_echo = max(20, int(2000 * scale))
    n_assoc = max(10, int(200 * scale))
    n_find = max(10, int(300 * scale))
    n_store = max(20, int(500 * scale))
    n_store_big = max(10, int(100 * scale))
    pnd_scale = 0.25  # pynetdicom is slow; give it fewer iterations, rates stay comparable

    rows: list[dict[str, Any]] = []

    def row(name: str, unit: str, n: int, rates: dict[str, float]) -> None:
        rows.append({"operation": name, "unit": unit, "n": n, "rates": rates})
        print(
            f"{name}: " + ", ".join(f"{k} {v:,.0f} {unit}/s" for k, v in rates.items()), flush=True
        )

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        small = write_corpus(tmpdir / "small", [make_instance(1, 1, 1, i) for i in range(n_store)])
        big = write_corpus(
            tmpdir / "big",
            [make_instance(2, 1, 1, i, rows=512, cols=512) for i in range(n_store_big)],
        )
        with StoreSCP(ignore=True, workdir=tmpdir / "storescp") as scp:
            p, aet = scp.port, scp.aet
            n_pnd = max(5, int(n_echo * pnd_scale))
            row(
                "C-ECHO, one association",
                "echo",
                n_echo,
                {
                    "harmony-dimse": n_echo / run_async(ours_echo(p, aet, n_echo)),
                    "pynetdicom": n_pnd / pnd_echo(p, aet, n_pnd),
                    "DCMTK echoscu": n_echo
                    / run_dcmtk("echoscu", "--repeat", str(n_echo), "-aec", aet, LOCAL, str(p)),
                },
            )
            n_pnd = max(5, int(n_assoc * pnd_scale))
            row(
                "associate + C-ECHO + release",
                "assoc",
                n_assoc,
                {
                    "harmony-dimse": n_assoc / run_async(ours_assoc_echo(p, aet, n_assoc)),
                    "pynetdicom": n_pnd / pnd_echo(p, aet, n_pnd, new_assoc=True),
                    "DCMTK echoscu": dcmtk_assoc_rate(p, aet, max(5, n_assoc // 10)),
                },
            )
            for label, files in (("C-STORE 16x16 CT", small), ("C-STORE 512x512 CT", big)):
                n = len(files)
                n_pnd = max(5, int(n * pnd_scale))
                row(
                    label,
                    "image",
                    n,
                    {
                        "harmony-dimse": n / run_async(ours_store(p, aet, files)),
                        "pynetdicom": n_pnd / pnd_store(p, aet, files[:n_pnd]),
                        "DCMTK storescu": n
                        / run_dcmtk("storescu", "-aec", aet, LOCAL, str(p), *map(str, files)),
                    },
                )
        with OrthancPeer(workdir=tmpdir / "orthanc", dicom_threads=4) as orthanc:
            corpus = write_corpus(
                tmpdir / "corpus",
                [make_instance(pt, st, 1, 1) for pt in range(10) for st in range(2)],
            )
            orthanc.upload_dir(tmpdir / "corpus")
            assert len(corpus) == orthanc.count_instances()
            p, aet = orthanc.dicom_port, orthanc.aet
            one = str(make_instance(3, 1, 1, 1).StudyInstanceUID)
            for label, query in (
                ("C-FIND one study (Orthanc)", {"StudyInstanceUID": one}),
                ("C-FIND all studies (Orthanc)", {"StudyInstanceUID": "", "PatientName": ""}),
            ):
                n_pnd = max(5, int(n_find * pnd_scale))
                keys = [a for k, v in query.items() for a in ("-k", f"{k}={v}")]
                row(
                    label,
                    "query",
                    n_find,
                    {
                        "harmony-dimse": n_find / run_async(ours_find(p, aet, n_find, query))[0],
                        "pynetdicom": n_pnd / pnd_find(p, aet, n_pnd, query),
                        "DCMTK findscu": n_find
                        / run_dcmtk(
                            "findscu",
                            "-S",
                            "--repeat",
                            str(n_find),
                            "-aec",
                            aet,
                            "-k",
                            "QueryRetrieveLevel=STUDY",
                            *keys,
                            LOCAL,
                            str(p),
                        ),
                    },
                )

    lines = [
        "| operation | harmony-dimse | pynetdicom | DCMTK | vs pynetdicom | vs DCMTK |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        rates = r["rates"]
        ours, pnd = rates["harmony-dimse"], rates["pynetdicom"]
        dcmtk = next(v for k, v in rates.items() if k.startswith("DCMTK"))
        lines.append(
            f"| {r['operation']} | {ours:,.0f}/s | {pnd:,.0f}/s | {dcmtk:,.0f}/s "
            f"| {ours / pnd:.1f}x | {ours / dcmtk:.2f}x |"
        )
    table = "\n".join(lines)
    print()
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "cpus": os.cpu_count()}, indent=2))
    if args.markdown:
        args.markdown.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
