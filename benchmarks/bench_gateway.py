"""The gateway against Orthanc's own REST-to-DIMSE API: same PACS, same load generator, same run.

    .venv/bin/python -m benchmarks.bench_gateway [--quick] [--json F] [--markdown F] [--svg F]

Starts Orthanc (TCP_NODELAY=1, DicomThreadsCount raised) loaded with a synthetic corpus, a DCMTK
``storescp --ignore`` as the C-MOVE/C-STORE destination, and our gateway (a separate process,
pooled associations to Orthanc). Each operation runs at concurrency 1 and 16 through the same
keep-alive HTTP client against both. For reference it also measures the raw DIMSE rate of DCMTK
tools on one association against the same Orthanc (the ceiling the PACS allows) and the latency
our gateway adds over a raw DIMSE round trip on a pooled association. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.bench_dimse import run_async, run_dcmtk
from benchmarks.cpu import CPUMeter
from benchmarks.loadgen import LoadResult, Step, run_load
from harmony_dimse.gateway.multipart import closing, new_boundary, part_header
from harmony_dimse.net.association import connect
from tests.corpus import make_instance, write_corpus
from tests.peers import OrthancPeer, StoreSCP, free_port, storescu

LOCAL = "127.0.0.1"
JSON = {"Content-Type": "application/json"}


def gateway_config(
    tmp: Path,
    workers: int,
    http_port: int,
    orthanc: OrthancPeer,
    store_port: int,
    incoming_port: int,
    pool_size: int,
    pacs_port: int,
) -> Path:
    (tmp / "pipelines").mkdir(parents=True, exist_ok=True)
    (tmp / "config.toml").write_text(f"""
[proxy]
id = "bench"
log_level = "warn"
pipelines_path = "pipelines"
workers = {workers}

[network.http_net.http]
bind_address = "127.0.0.1"
bind_port = {http_port}

[logging]
log_to_file = false

[storage]
backend = "filesystem"

[storage.options]
path = "./storage"
""")
    routes = [
        ("orthanc", "/trigger-dicom", orthanc.aet, orthanc.dicom_port),
        ("pacs", "/pacs-dicom", "HARMONY_PACS", pacs_port),
        ("storescp", "/store-dicom", "STORESCP", store_port),
    ]
    (tmp / "pipelines" / "bench.toml").write_text(
        "".join(
            pipeline_toml(name, prefix, aet, port, incoming_port, pool_size)
            for name, prefix, aet, port in routes
        )
    )
    return tmp / "config.toml"


def pipeline_toml(
    name: str, prefix: str, aet: str, port: int, incoming_port: int, pool_size: int
) -> str:
    """One pipeline: an endpoint on ``prefix`` to a DICOM backend ``aet`` at 127.0.0.1:port."""
    return f"""
[pipelines.{name}]
description = "gateway to {aet}"
networks = ["http_net"]
endpoints = ["{name}"]
backends = ["{name}"]

[endpoints.{name}]
service = "http"
[endpoints.{name}.options]
path_prefix = "{prefix}"

[backends.{name}]
service = "dicom"
[backends.{name}.options]
aet = "{aet}"
host = "127.0.0.1"
port = {port}
local_aet = "HARMONY_SCU"
incoming_store_port = {incoming_port}
pool_size = {pool_size}
pool_max_operations = 1000000
"""


def start_pacs(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    """Our embedded PACS with the same corpus, for the rows that show the gateway's own cost."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harmony_dimse", "pacs", "--aet", "HARMONY_PACS", "--host", LOCAL,
         "--port", str(port), "--storage", str(tmp / "pacs"), "--import", str(tmp / "corpus")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    import socket

    for _ in range(600):
        with socket.socket() as probe:
            if probe.connect_ex((LOCAL, port)) == 0:
                return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"PACS did not start: {proc.stderr.read().decode() if proc.stderr else ''}")


def start_gateway(config: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harmony_dimse", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=config.parent,
    )  # fmt: skip
    import urllib.request

    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://{LOCAL}:{port}/healthz", timeout=1)
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"gateway did not start: {proc.stderr.read().decode() if proc.stderr else ''}")


def post(path: str, obj: Any) -> Step:
    return ("POST", path, json.dumps(obj).encode(), JSON)


def multipart(files: Sequence[Path]) -> tuple[bytes, dict[str, str]]:
    boundary = new_boundary()
    parts = []
    for f in files:
        parts += [part_header(boundary, "application/dicom"), f.read_bytes(), b"\r\n"]
    parts.append(closing(boundary))
    ctype = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return b"".join(parts), {"Content-Type": ctype}


def orthanc_query(level: str, query: dict[str, str]) -> list[Step | Callable[[bytes], Step]]:
    def answers(previous: bytes) -> Step:
        qid = json.loads(previous)["ID"]
        return ("GET", f"/queries/{qid}/answers?expand", b"", {})

    return [post("/modalities/self/query", {"Level": level, "Query": query}), answers]


async def raw_p50(port: int, aet: str, what: str, study: str, n: int = 300) -> float:
    """p50 of one DIMSE operation on an open association (our SCU straight to Orthanc)."""
    times = []
    async with connect(LOCAL, port, called_aet=aet) as assoc:
        for _ in range(n):
            start = time.perf_counter()
            if what == "echo":
                await assoc.echo()
            else:
                async for _m in assoc.find_raw({"StudyInstanceUID": study}, level="STUDY"):
                    pass
            times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small corpus, ~1 s per cell (CI)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--svg", type=Path)
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    parser.add_argument(
        "--pool", type=int, default=16, help="associations per backend and worker (default 16)"
    )
    parser.add_argument(
        "--only", action="append", default=[], help="run only this operation (repeatable)"
    )
    args = parser.parse_args(argv)
    seconds = 1.0 if args.quick else 6.0
    rounds = 1 if args.quick else 3

    def selected(name: str) -> bool:
        return not args.only or name in args.only

    patients, studies, series, instances = (6, 2, 3, 2) if args.quick else (50, 2, 3, 10)
    concurrencies = (1, 16)
    rows: list[dict[str, Any]] = []

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        corpus = [
            make_instance(p, st, se, i)
            for p in range(1, patients + 1)
            for st in range(1, studies + 1)
            for se in range(1, series + 1)
            for i in range(1, instances + 1)
        ]
        files = write_corpus(tmp / "corpus", corpus)
        study_uids = sorted({str(ds.StudyInstanceUID) for ds in corpus})
        study_files = {
            u: [f for f, ds in zip(files, corpus, strict=True) if ds.StudyInstanceUID == u]
            for u in study_uids[:1]
        }
        one_study = study_uids[0]
        store_port, incoming_port, dicom_port, http_port = (free_port() for _ in range(4))
        with (
            StoreSCP(ignore=True, port=store_port, workdir=tmp / "storescp") as scp,
            OrthancPeer(
                workdir=tmp / "orthanc",
                dicom_port=dicom_port,
                dicom_threads=32,
                modalities={
                    "self": ["ORTHANC", LOCAL, dicom_port],
                    "storescp": [scp.aet, LOCAL, store_port],
                    "harmony": ["HARMONY_SCU", LOCAL, incoming_port],
                },
                extra={"HttpThreadsCount": 32, "DicomAssociationCloseDelay": 30},
            ) as orthanc,
        ):
            loaded = storescu(files, orthanc.aet, orthanc.dicom_port)
            if loaded.returncode != 0:
                raise SystemExit(f"loading the corpus failed: {loaded.stderr[-500:]}")
            print(f"Orthanc loaded with {orthanc.count_instances()} instances", flush=True)
            _, found = orthanc.rest("POST", "/tools/lookup", one_study, "text/plain")
            orthanc_study_id = json.loads(found)[0]["ID"]
            pacs_port = free_port()
            config = gateway_config(
                tmp / "gw",
                args.workers,
                http_port,
                orthanc,
                store_port,
                incoming_port,
                args.pool,
                pacs_port,
            )
            pacs = start_pacs(tmp, pacs_port)
            gateway = start_gateway(config, http_port)
            try:
                body, mp_headers = multipart(study_files[one_study])
                ops: list[tuple[str, Callable[[int], Any], Callable[[int], Any], int]] = [
                    (
                        "C-ECHO",
                        lambda i: [post("/trigger-dicom", {"operation": "C-ECHO"})],
                        lambda i: [post("/modalities/self/echo", {})],
                        http_port,
                    ),
                    (
                        "C-FIND one study",
                        lambda i: [
                            post(
                                "/trigger-dicom",
                                {
                                    "operation": "C-FIND",
                                    "level": "STUDY",
                                    "query": {
                                        "StudyInstanceUID": study_uids[i % len(study_uids)],
                                        "PatientName": "",
                                        "StudyDate": "",
                                    },
                                },
                            )
                        ],
                        lambda i: orthanc_query(
                            "Study",
                            {
                                "StudyInstanceUID": study_uids[i % len(study_uids)],
                                "PatientName": "",
                                "StudyDate": "",
                            },
                        ),
                        http_port,
                    ),
                    (
                        "C-FIND all studies",
                        lambda i: [
                            post(
                                "/trigger-dicom",
                                {
                                    "operation": "C-FIND",
                                    "level": "STUDY",
                                    "query": {
                                        "StudyInstanceUID": "",
                                        "PatientName": "",
                                        "PatientID": "",
                                    },
                                },
                            )
                        ],
                        lambda i: orthanc_query(
                            "Study", {"StudyInstanceUID": "", "PatientName": "", "PatientID": ""}
                        ),
                        http_port,
                    ),
                    (
                        "C-MOVE one study",
                        lambda i: [
                            post(
                                "/trigger-dicom",
                                {
                                    "operation": "C-MOVE",
                                    "destination": scp.aet,
                                    "level": "STUDY",
                                    "query": {"StudyInstanceUID": study_uids[i % len(study_uids)]},
                                },
                            )
                        ],
                        lambda i: [
                            post(
                                "/modalities/self/move",
                                {
                                    "Level": "Study",
                                    "TargetAet": scp.aet,
                                    "Synchronous": True,
                                    "Resources": [
                                        {"StudyInstanceUID": study_uids[i % len(study_uids)]}
                                    ],
                                },
                            )
                        ],
                        http_port,
                    ),
                    (
                        "C-STORE one study",
                        lambda i: [("POST", "/store-dicom", body, mp_headers)],
                        lambda i: [
                            post(
                                "/modalities/storescp/store",
                                {"Resources": [orthanc_study_id], "Synchronous": True},
                            )
                        ],
                        http_port,
                    ),
                ]
                meter = CPUMeter(
                    {"gateway": gateway.pid, "orthanc": orthanc.pid}, {"loadgen": os.getpid()}
                )
                for name, ours_job, orthanc_job, _ in ops:
                    if not selected(name):
                        continue
                    for conc in concurrencies:
                        # the two sides take turns, so a slow spell of the machine hits both
                        ours_rounds, theirs_rounds = [], []
                        for _ in range(rounds):
                            ours_rounds.append(
                                measure(meter, http_port, ours_job, conc, seconds / rounds)
                            )
                            theirs_rounds.append(
                                measure(
                                    meter, orthanc.http_port, orthanc_job, conc, seconds / rounds
                                )
                            )
                        ours, ours_cpu = combine(ours_rounds)
                        theirs, theirs_cpu = combine(theirs_rounds)
                        rows.append(_row(name, conc, ours, theirs, ours_cpu, theirs_cpu))
                        print(describe(rows[-1], ours, theirs), flush=True)
                for name, body_json in (
                    ("C-ECHO (embedded PACS)", {"operation": "C-ECHO"}),
                    (
                        "C-FIND one study (embedded PACS)",
                        {
                            "operation": "C-FIND",
                            "level": "STUDY",
                            "query": {"StudyInstanceUID": one_study, "PatientName": ""},
                        },
                    ),
                ):
                    if not selected(name):
                        continue
                    meter = CPUMeter(
                        {"gateway": gateway.pid, "pacs": pacs.pid}, {"loadgen": os.getpid()}
                    )
                    for conc in concurrencies:
                        meter.start()
                        ours = run_async(
                            run_load(
                                LOCAL,
                                http_port,
                                lambda i, b=body_json: [post("/pacs-dicom", b)],
                                concurrency=conc,
                                seconds=seconds,
                            )
                        )
                        rows.append(_row(name, conc, ours, None, meter.stop(), None))
                        print(describe(rows[-1], ours, None), flush=True)
                n = 300 if args.quick else 2000
                ceiling = {
                    "C-ECHO": n
                    / run_dcmtk(
                        "echoscu",
                        "--repeat",
                        str(n),
                        "-aec",
                        orthanc.aet,
                        LOCAL,
                        str(orthanc.dicom_port),
                    ),
                    "C-FIND one study": n
                    / run_dcmtk(
                        "findscu",
                        "-S",
                        "--repeat",
                        str(n),
                        "-aec",
                        orthanc.aet,
                        "-k",
                        "QueryRetrieveLevel=STUDY",
                        "-k",
                        f"StudyInstanceUID={one_study}",
                        "-k",
                        "PatientName",
                        "-k",
                        "StudyDate",
                        LOCAL,
                        str(orthanc.dicom_port),
                    ),
                    "C-FIND all studies": max(20, n // 10)
                    / run_dcmtk(
                        "findscu",
                        "-S",
                        "--repeat",
                        str(max(20, n // 10)),
                        "-aec",
                        orthanc.aet,
                        "-k",
                        "QueryRetrieveLevel=STUDY",
                        "-k",
                        "StudyInstanceUID",
                        "-k",
                        "PatientName",
                        "-k",
                        "PatientID",
                        LOCAL,
                        str(orthanc.dicom_port),
                    ),
                }
                added = {}
                for what, label in (("echo", "C-ECHO"), ("find", "C-FIND one study")):
                    gw = next(
                        (r for r in rows if r["operation"] == label and r["concurrency"] == 1),
                        None,
                    )
                    if gw is None:
                        continue
                    raw = run_async(raw_p50(orthanc.dicom_port, orthanc.aet, what, one_study))
                    added[label] = gw["ours_p50_ms"] - raw * 1000
                    print(
                        f"{label}: raw DIMSE p50 {raw * 1000:.3f} ms; gateway adds "
                        f"{added[label]:.3f} ms at p50",
                        flush=True,
                    )
            finally:
                gateway.terminate()
                gateway.wait(10)
                pacs.terminate()
                pacs.wait(10)

    for r in rows:
        c = ceiling.get(r["operation"])
        r["dcmtk_ceiling_rps"] = c
        r["ours_vs_ceiling"] = r["ours_rps"] / c if c else None
    table = markdown(rows, added)
    print()
    print(table)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"rows": rows, "added_p50_ms": added, "quick": args.quick, "cpus": os.cpu_count()},
                indent=2,
            )
        )
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.svg:
        args.svg.write_text(svg_chart(rows))
    return 0


def measure(
    meter: CPUMeter, port: int, job: Callable[[int], Any], conc: int, seconds: float
) -> tuple[LoadResult, dict[str, float]]:
    """One run of ``job`` against ``port`` and the cores each process used meanwhile."""
    meter.start()
    result = run_async(run_load(LOCAL, port, job, concurrency=conc, seconds=seconds))
    return result, meter.stop()


def combine(runs: list[tuple[LoadResult, dict[str, float]]]) -> tuple[LoadResult, dict[str, float]]:
    """Several runs of one cell as one: the median rate (as operations over the median run's
    seconds), every latency, all errors, and the mean cores used."""
    by_rate = sorted(runs, key=lambda run: run[0].rate)
    middle = by_rate[len(by_rate) // 2][0]
    merged = LoadResult(middle.operations, middle.seconds)
    for result, _ in runs:
        merged.latencies.extend(result.latencies)
        merged.errors += result.errors
        merged.first_error = merged.first_error or result.first_error
    cpu = {name: round(sum(c[name] for _, c in runs) / len(runs), 2) for name in runs[0][1]}
    return merged, cpu


def _row(
    name: str,
    conc: int,
    ours: LoadResult,
    theirs: LoadResult | None,
    ours_cpu: dict[str, float],
    theirs_cpu: dict[str, float] | None,
) -> dict[str, Any]:
    """One table row; ``*_cpu`` are the cores each process used during that side's run."""
    row: dict[str, Any] = {
        "operation": name,
        "concurrency": conc,
        "ours_cpu": ours_cpu,
        "orthanc_cpu": theirs_cpu,
        "ours_rps": ours.rate,
        "ours_p50_ms": ours.percentile(0.5) * 1000,
        "ours_p99_ms": ours.percentile(0.99) * 1000,
        "ours_errors": ours.errors,
        "orthanc_rps": None,
        "orthanc_p50_ms": None,
        "orthanc_p99_ms": None,
        "orthanc_errors": None,
        "ratio": None,
    }
    if theirs is not None:
        row.update(
            orthanc_rps=theirs.rate,
            orthanc_p50_ms=theirs.percentile(0.5) * 1000,
            orthanc_p99_ms=theirs.percentile(0.99) * 1000,
            orthanc_errors=theirs.errors,
            ratio=ours.rate / theirs.rate if theirs.rate else None,
        )
    return row


def describe(r: dict[str, Any], ours: LoadResult, theirs: LoadResult | None) -> str:
    text = (
        f"{r['operation']} c={r['concurrency']}: ours {r['ours_rps']:,.0f}/s"
        f" p50 {r['ours_p50_ms']:.2f} ms"
    )
    if theirs is not None:
        text += (
            f" | Orthanc REST {r['orthanc_rps']:,.0f}/s p50 {r['orthanc_p50_ms']:.2f} ms"
            f" | ratio {_times(r['ratio'])}"
        )
    text += "\n    cores used, ours: " + _cores(r["ours_cpu"])
    if r["orthanc_cpu"]:
        text += " | Orthanc REST: " + _cores(r["orthanc_cpu"])
    errors = ours.errors + (theirs.errors if theirs else 0)
    if errors:
        first = ours.first_error or (theirs.first_error if theirs else "")
        text += f" | errors: {errors}: {first}"
    return text


def _cores(cpu: dict[str, float]) -> str:
    return ", ".join(f"{name} {cores:.2f}" for name, cores in cpu.items())


def _times(value: float | None) -> str:
    return f"{value:.2f}x" if value else "-"


def _num(value: float | None) -> str:
    return f"{value:,.0f}" if value else "-"


def _latency(r: dict[str, Any]) -> str:
    if r["orthanc_p50_ms"] is None:
        return "-"
    return f"{r['orthanc_p50_ms']:.2f} / {r['orthanc_p99_ms']:.2f}"


def markdown(rows: list[dict[str, Any]], added: dict[str, float]) -> str:
    lines = [
        "| operation | conc. | harmony-dimse req/s | p50 / p99 ms | Orthanc REST req/s"
        " | p50 / p99 ms | ratio | DCMTK ceiling /s | ours / ceiling |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ceiling = r.get("dcmtk_ceiling_rps")
        lines.append(
            f"| {r['operation']} | {r['concurrency']} | {r['ours_rps']:,.0f} "
            f"| {r['ours_p50_ms']:.2f} / {r['ours_p99_ms']:.2f} | {_num(r['orthanc_rps'])} "
            f"| {_latency(r)} | {_times(r['ratio'])} "
            f"| {_num(ceiling)} | {_times(r['ours_vs_ceiling'])} |"
        )
    for label, ms in added.items():
        lines.append("")
        lines.append(
            f"p50 latency the gateway adds to a raw {label} on a pooled association: {ms:.3f} ms"
        )
    lines += [
        "",
        "CPU cores used during the concurrency-16 runs, per process and for the whole machine"
        " (2 cores; kernel work included):",
        "",
        "| operation | ours: gateway | ours: PACS | ours: load generator | ours: machine"
        " | REST: Orthanc | REST: load generator | REST: machine |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["concurrency"] != 16:
            continue
        ours, theirs = r["ours_cpu"], r["orthanc_cpu"] or {}
        pacs = ours.get("orthanc", ours.get("pacs", 0.0))
        lines.append(
            f"| {r['operation']} | {ours['gateway']:.2f} | {pacs:.2f} | {ours['loadgen']:.2f}"
            f" | {_cores_or_dash(ours, 'machine')} | {_cores_or_dash(theirs, 'orthanc')}"
            f" | {_cores_or_dash(theirs, 'loadgen')} | {_cores_or_dash(theirs, 'machine')} |"
        )
    return "\n".join(lines)


def _cores_or_dash(cpu: dict[str, float], name: str) -> str:
    return f"{cpu[name]:.2f}" if name in cpu else "-"


def svg_chart(rows: list[dict[str, Any]]) -> str:
    """Requests/s at concurrency 16 by operation, ours vs Orthanc REST, as a plain SVG bar chart."""
    data = [r for r in rows if r["concurrency"] == 16 and r["orthanc_rps"] is not None]
    width, bar_h, gap, left = 760, 16, 14, 170
    height = 40 + len(data) * (2 * bar_h + gap) + 30
    span = width - left - 90
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        '<text x="10" y="20" font-size="14" font-weight="bold">Requests/s at concurrency 16: '
        "harmony-dimse gateway vs Orthanc REST (same Orthanc PACS; bars scaled per operation)"
        "</text>",
    ]
    y = 40
    for r in data:
        scale = span / (max(r["ours_rps"], r["orthanc_rps"]) or 1)
        out.append(f'<text x="10" y="{y + bar_h + 4}">{r["operation"]}</text>')
        for value, color, label in (
            (r["ours_rps"], "#2b7bb9", "harmony-dimse"),
            (r["orthanc_rps"], "#e07b39", "Orthanc REST"),
        ):
            w = max(1, value * scale)
            out.append(
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}">'
                f"<title>{label}: {value:,.0f}/s</title></rect>"
            )
            out.append(f'<text x="{left + w + 5:.1f}" y="{y + bar_h - 4}">{value:,.0f}/s</text>')
            y += bar_h
        y += gap
    out.append(
        f'<rect x="{left}" y="{y + 4}" width="12" height="12" fill="#2b7bb9"/>'
        f'<text x="{left + 16}" y="{y + 14}">harmony-dimse</text>'
        f'<rect x="{left + 130}" y="{y + 4}" width="12" height="12" fill="#e07b39"/>'
        f'<text x="{left + 146}" y="{y + 14}">Orthanc REST</text>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
