"""Real DICOM peers for interop tests: Orthanc, DCMTK storescp and dcmqrscp, and the DCMTK clients.

Each peer runs in its own working directory on a free port, logs stdout and stderr to a file
there, and is stopped by PID (terminate, wait, kill) together with any child it forked. A peer
that does not come up raises PeerStartError carrying the tail of its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self

import pytest

LOCALHOST = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.05
CLIENT_TIMEOUT_SECONDS = 60.0
LOG_TAIL_LINES = 40

INSTALL_HINT = "run scripts/setup.sh (it installs the Debian packages orthanc and dcmtk)"

# Searched after PATH: Orthanc lives in /usr/sbin, which is not on every user's PATH.
_EXTRA_SYSTEM_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin")

_LISTEN_STATE = "0A"


class PeerStartError(RuntimeError):
    """A peer process exited or did not become ready in time; the message ends with its log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _venv_bin_dirs() -> set[Path]:
    """Script directories of the running virtualenv (where pynetdicom puts its own echoscu etc.)."""
    dirs = {Path(sys.prefix) / "bin"}
    virtual_env = os.environ.get("VIRTUAL_ENV")
    if virtual_env:
        dirs.add(Path(virtual_env) / "bin")
    return {d.resolve() for d in dirs if d.exists()}


def find_system_executable(name: str) -> str | None:
    """The path of a system (not virtualenv) executable, or None.

    The virtualenv is skipped on purpose: pynetdicom ships apps named echoscu, findscu, storescu and
    storescp that would otherwise shadow the DCMTK tools these tests mean to talk to.
    """
    excluded = _venv_bin_dirs()
    path_dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    for directory in [*path_dirs, *_EXTRA_SYSTEM_DIRS]:
        candidate = Path(directory) / name
        if candidate.parent.resolve() in excluded:
            continue
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_executable(name: str) -> str:
    """The path of a system executable; fails the test under CI=true when missing, else skips it."""
    path = find_system_executable(name)
    if path is not None:
        return path
    message = f"{name} is not installed; {INSTALL_HINT}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def peer_environment() -> dict[str, str]:
    """The environment for peers and DCMTK clients: ours plus TCP_NODELAY=1."""
    env = dict(os.environ)
    env["TCP_NODELAY"] = "1"
    return env


def run_tool(
    name: str, *args: str | os.PathLike[str], timeout: float = CLIENT_TIMEOUT_SECONDS
) -> subprocess.CompletedProcess[str]:
    """Run a system tool (e.g. a DCMTK client) to completion with TCP_NODELAY=1; output captured."""
    executable = require_executable(name)
    return subprocess.run(
        [executable, *(os.fspath(arg) for arg in args)],
        env=peer_environment(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )


def echoscu(
    called_aet: str, port: int, *, calling_aet: str = "ECHOSCU"
) -> subprocess.CompletedProcess[str]:
    """DCMTK C-ECHO to 127.0.0.1:port."""
    return run_tool("echoscu", "-aet", calling_aet, "-aec", called_aet, LOCALHOST, str(port))


def storescu(
    files: Iterable[Path], called_aet: str, port: int, *, calling_aet: str = "STORESCU"
) -> subprocess.CompletedProcess[str]:
    """DCMTK C-STORE of the given files to 127.0.0.1:port over one association."""
    file_args = [os.fspath(path) for path in files]
    return run_tool(
        "storescu", "-aet", calling_aet, "-aec", called_aet, LOCALHOST, str(port), *file_args
    )


_IDENTIFIER_ELEMENT = re.compile(r"\(([0-9a-fA-F]{4}),([0-9a-fA-F]{4})\)\s+\w\w\s+\[([^\]]*)\]")
_FIND_RESPONSE_HEADER = re.compile(r"Find Response: \d+ \(Pending\)")


def findscu_values(
    called_aet: str,
    port: int,
    keys: Sequence[str],
    tag: str,
    *,
    calling_aet: str = "FINDSCU",
    study_root: bool = True,
) -> list[str]:
    """Run a DCMTK C-FIND with `-k` keys and return the values of `tag` ("gggg,eeee") per match.

    Raises AssertionError when findscu itself fails.
    """
    model = "-S" if study_root else "-P"
    key_args = [arg for key in keys for arg in ("-k", key)]
    result = run_tool(
        "findscu",
        "-v",
        model,
        "-aet",
        calling_aet,
        "-aec",
        called_aet,
        *key_args,
        LOCALHOST,
        str(port),
    )
    if result.returncode != 0:
        raise AssertionError(
            f"findscu failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return _values_in_find_responses(result.stdout + result.stderr, tag)


def _values_in_find_responses(output: str, tag: str) -> list[str]:
    wanted = tag.lower().replace("(", "").replace(")", "")
    values: list[str] = []
    in_response = False
    for line in output.splitlines():
        if _FIND_RESPONSE_HEADER.search(line):
            in_response = True
            continue
        if "Find Response" in line or "Request Identifiers" in line:
            in_response = False
            continue
        match = _IDENTIFIER_ELEMENT.search(line)
        if in_response and match and f"{match[1]},{match[2]}".lower() == wanted:
            values.append(match[3].rstrip("\0 "))
    return values


def process_is_running(pid: int) -> bool:
    """Whether a process with this PID exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        stat = ""
    if stat:
        state = stat.rsplit(")", 1)[1].split()[0]
        return state != "Z"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def process_group_members(pgid: int) -> list[int]:
    """PIDs of live processes in process group `pgid` (Linux /proc; empty elsewhere)."""
    members: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return members
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, process_group = fields[0], int(fields[2])
        if process_group == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def _listening_socket_inodes(port: int) -> set[str] | None:
    """Inodes of sockets listening on `port`, or None when /proc/net is unavailable."""
    inodes: set[str] = set()
    found_table = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        found_table = True
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == _LISTEN_STATE:
                inodes.add(fields[9])
    return inodes if found_table else None


def _socket_inodes_of(pid: int) -> set[str]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(OSError):
        for fd in fd_dir.iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    return inodes


def is_listening(pid: int, port: int) -> bool:
    """Whether process `pid` listens on TCP `port`.

    Reads /proc so the peer sees no probe connection; falls back to a TCP connect without /proc.
    """
    listening = _listening_socket_inodes(port)
    if listening is not None:
        return bool(listening & _socket_inodes_of(pid))
    try:
        with socket.create_connection((LOCALHOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class PeerProcess:
    """A peer program in its own working directory, logged to a file, stopped by PID."""

    name = "peer"
    stop_grace_seconds = STOP_TIMEOUT_SECONDS

    def __init__(self, workdir: Path | None, startup_timeout: float) -> None:
        self._owns_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix=f"{self.name}-")) if workdir is None else workdir
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    # Subclasses provide these two.
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Write configuration files; runs before the process starts."""

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> Self:
        if self._process is not None:
            raise RuntimeError(f"{self.name} is already started")
        self._prepare()
        command = self._command()
        with self.log_path.open("ab") as log:
            # A session of its own makes the peer the leader of a process group, so forked
            # children can be found at stop time.
            self._process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=peer_environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            exit_code = self._process.poll()
            if exit_code is not None:
                self._fail_start(f"exited with code {exit_code} during startup")
            if self._is_ready():
                return self
            if time.monotonic() > deadline:
                self._fail_start(f"was not ready after {self.startup_timeout:.0f}s")
            time.sleep(POLL_INTERVAL_SECONDS)

    def _fail_start(self, reason: str) -> NoReturn:
        command = " ".join(self._command())
        self.stop(remove_workdir=False)
        raise PeerStartError(
            f"{self.name} {reason}\ncommand: {command}\n"
            f"log {self.log_path}, last lines:\n{self.log_tail()}"
        )

    def stop(self, *, remove_workdir: bool = True) -> None:
        """Terminate the peer, wait, kill if needed, then kill any child it left in its group."""
        process = self._process
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=self.stop_grace_seconds)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for child_pid in process_group_members(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child_pid, signal.SIGKILL)
        if remove_workdir and self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class OrthancPeer(PeerProcess):
    """An Orthanc server with its own storage, SQLite index and JSON configuration."""

    name = "orthanc"
    # A graceful stop takes Orthanc ~3.5 s (its HTTP and DICOM servers poll); the throwaway index
    # and storage do not need it, so the kill follows soon after the terminate.
    stop_grace_seconds = 0.25

    def __init__(
        self,
        *,
        aet: str = "ORTHANC",
        dicom_port: int | None = None,
        http_port: int | None = None,
        check_called_aet: bool = False,
        modalities: Mapping[str, Sequence[Any]] | None = None,
        dicom_threads: int = 4,
        extra: Mapping[str, Any] | None = None,
        verbose: bool = False,
        workdir: Path | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
    ) -> None:
        self.executable = require_executable("Orthanc")
        super().__init__(workdir, startup_timeout)
        self.aet = aet
        self.host = LOCALHOST
        self.dicom_port = dicom_port if dicom_port is not None else free_port()
        self.http_port = http_port if http_port is not None else free_port()
        self.url = f"http://{LOCALHOST}:{self.http_port}"
        self.verbose = verbose
        self.config_path = self.workdir / "orthanc.json"
        self.config: dict[str, Any] = {
            "Name": f"harmony-test-{self.dicom_port}",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "Plugins": [],
            "DicomServerEnabled": True,
            "DicomAet": aet,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": check_called_aet,
            "DicomModalities": {name: list(entry) for name, entry in (modalities or {}).items()},
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowMove": True,
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowStore": True,
            "DicomThreadsCount": dicom_threads,
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "HttpThreadsCount": 8,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "StableAge": 1,
            "ConcurrentJobs": 2,
            "SaveJobs": False,
            "LimitFindResults": 0,
            "LimitFindInstances": 0,
        }
        self.config.update(extra or {})

    def _prepare(self) -> None:
        self.config_path.write_text(json.dumps(self.config, indent=2))

    def _command(self) -> list[str]:
        command = [self.executable]
        if self.verbose:
            command.append("--verbose")
        command.append(str(self.config_path))
        return command

    def _is_ready(self) -> bool:
        try:
            status, _ = self.rest("GET", "/system", timeout=1.0)
        except OSError:
            return False
        return status == 200 and is_listening(self.pid, self.dicom_port)

    def rest(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        content_type: str = "application/json",
        *,
        timeout: float = CLIENT_TIMEOUT_SECONDS,
    ) -> tuple[int, bytes]:
        """One HTTP request to Orthanc's REST API; returns (status, body) whatever the status."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def rest_json(self, method: str, path: str, body: Any = None) -> Any:
        """A REST call with a JSON body (unless None) and a JSON answer; raises on non-2xx."""
        payload = None if body is None else json.dumps(body)
        status, answer = self.rest(method, path, payload)
        if not 200 <= status < 300:
            raise AssertionError(f"Orthanc {method} {path} -> {status}: {answer[:500]!r}")
        return json.loads(answer) if answer else None

    def upload(self, source: Path | str | bytes) -> str:
        """POST one DICOM file (path or bytes) to /instances; returns the Orthanc instance ID."""
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        status, answer = self.rest("POST", "/instances", data, "application/dicom")
        if status != 200:
            raise AssertionError(f"Orthanc refused upload ({status}): {answer[:500]!r}")
        instance_id: str = json.loads(answer)["ID"]
        return instance_id

    def upload_dir(self, directory: Path | str) -> list[str]:
        """Upload every file under `directory` (recursively, sorted); returns the instance IDs."""
        files = sorted(path for path in Path(directory).rglob("*") if path.is_file())
        return [self.upload(path) for path in files]

    def instances(self) -> list[str]:
        ids: list[str] = self.rest_json("GET", "/instances")
        return ids

    def count_instances(self) -> int:
        count: int = self.rest_json("GET", "/statistics")["CountInstances"]
        return count

    def find_study_uids(self) -> list[str]:
        """Study Instance UIDs of every stored study, sorted."""
        studies = self.rest_json("GET", "/studies?expand")
        return sorted(study["MainDicomTags"]["StudyInstanceUID"] for study in studies)


class StoreSCP(PeerProcess):
    """DCMTK storescp: accepts C-STORE and either discards the data or writes it to a directory."""

    name = "storescp"

    def __init__(
        self,
        *,
        aet: str = "STORESCP",
        port: int | None = None,
        ignore: bool = True,
        output_dir: Path | None = None,
        extra_args: Sequence[str] = (),
        workdir: Path | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
    ) -> None:
        self.executable = require_executable("storescp")
        super().__init__(workdir, startup_timeout)
        self.aet = aet
        self.host = LOCALHOST
        self.port = port if port is not None else free_port()
        self.ignore = ignore and output_dir is None
        self.output_dir = None if self.ignore else (output_dir or self.workdir / "received")
        self.extra_args = list(extra_args)

    def _prepare(self) -> None:
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)

    def _command(self) -> list[str]:
        command = [self.executable, "--aetitle", self.aet]
        if self.output_dir is None:
            command.append("--ignore")
        else:
            command += ["--output-directory", str(self.output_dir)]
        return [*command, *self.extra_args, str(self.port)]

    def _is_ready(self) -> bool:
        return is_listening(self.pid, self.port)

    def received_files(self) -> list[Path]:
        """Files written so far (always empty with ignore=True)."""
        if self.output_dir is None:
            return []
        return sorted(path for path in self.output_dir.rglob("*") if path.is_file())


class DcmQrSCP(PeerProcess):
    """DCMTK dcmqrscp: a Query/Retrieve SCP with one storage area, able to C-MOVE to known AEs."""

    name = "dcmqrscp"

    def __init__(
        self,
        *,
        aet: str = "QRSCP",
        port: int | None = None,
        move_destinations: Mapping[str, tuple[str, int]] | None = None,
        single_process: bool = False,
        extra_args: Sequence[str] = (),
        workdir: Path | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
    ) -> None:
        self.executable = require_executable("dcmqrscp")
        super().__init__(workdir, startup_timeout)
        self.aet = aet
        self.host = LOCALHOST
        self.port = port if port is not None else free_port()
        self.move_destinations = dict(move_destinations or {})
        self.single_process = single_process
        self.extra_args = list(extra_args)
        self.storage_dir = self.workdir / "db"
        self.config_path = self.workdir / "dcmqrscp.cfg"

    def _config_text(self) -> str:
        hosts = [
            f"destination{index} = ({dest_aet}, {host}, {port})"
            for index, (dest_aet, (host, port)) in enumerate(self.move_destinations.items())
        ]
        return "\n".join(
            [
                f"NetworkTCPPort  = {self.port}",
                "MaxPDUSize      = 16384",
                "MaxAssociations = 16",
                "",
                "HostTable BEGIN",
                *hosts,
                "HostTable END",
                "",
                "VendorTable BEGIN",
                "VendorTable END",
                "",
                "AETable BEGIN",
                f"{self.aet} {self.storage_dir} RW (1000, 1024mb) ANY",
                "AETable END",
                "",
            ]
        )

    def _prepare(self) -> None:
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._config_text())

    def _command(self) -> list[str]:
        command = [self.executable, "--config", str(self.config_path)]
        command.append("--single-process" if self.single_process else "--fork")
        return [*command, *self.extra_args, str(self.port)]

    def _is_ready(self) -> bool:
        return is_listening(self.pid, self.port)

    def index_files(self, files: Iterable[Path]) -> list[Path]:
        """Copy files into the storage area and register them with dcmqridx (no network)."""
        copies: list[Path] = []
        for source in files:
            target = self.storage_dir / f"indexed_{len(copies):05d}_{source.name}"
            shutil.copyfile(source, target)
            copies.append(target)
        if copies:
            result = run_tool("dcmqridx", str(self.storage_dir), *(str(path) for path in copies))
            if result.returncode != 0:
                raise AssertionError(f"dcmqridx failed:\n{result.stdout}{result.stderr}")
        return copies

    def store_files(self, files: Iterable[Path], *, calling_aet: str = "STORESCU") -> None:
        """Send files to this SCP with DCMTK storescu."""
        result = storescu(files, self.aet, self.port, calling_aet=calling_aet)
        if result.returncode != 0:
            raise AssertionError(f"storescu into dcmqrscp failed:\n{result.stdout}{result.stderr}")


OrthancFactory = Callable[..., OrthancPeer]
"""Type of the orthanc_factory fixture: OrthancPeer keyword arguments in, a running peer out."""
StoreSCPFactory = Callable[..., StoreSCP]
"""Type of the storescp_factory fixture: StoreSCP keyword arguments in, a running peer out."""
DcmQrSCPFactory = Callable[..., DcmQrSCP]
"""Type of the dcmqrscp_factory fixture: DcmQrSCP keyword arguments in, a running peer out."""
