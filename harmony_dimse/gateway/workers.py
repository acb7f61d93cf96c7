"""``--workers N``: N gateway processes sharing the HTTP and storage ports (SO_REUSEPORT).

Each worker has its own event loop and association pools, and draws DIMSE message IDs from its
own partition so that a C-MOVE's instances, which the PACS may deliver to any worker, find their
way to the worker that asked (see ``gateway.incoming``). The parent only starts the workers,
forwards SIGINT/SIGTERM to them and exits with the first failure it sees.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ..net.association import partition_message_ids
from .app import run_gateway
from .config import GatewayConfig

Runner = Callable[[Coroutine[Any, Any, None]], None]


def serve_workers(config: GatewayConfig, workers: int, run: Runner) -> int:
    """Run the gateway in ``workers`` processes (1: in this process). Returns an exit status."""
    if workers <= 1:
        run(run_gateway(config))
        return 0
    run_id = f"{os.getpid()}-{int(time.time())}"
    children: list[int] = []
    for index in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker
            status = 0
            try:
                partition_message_ids(index, workers)
                run(run_gateway(config, worker=index, workers=workers, run_id=run_id))
            except KeyboardInterrupt:
                pass
            except BaseException as exc:
                print(f"harmony-dimse: worker {index}: {exc}", file=sys.stderr, flush=True)
                status = 1
            finally:
                os._exit(status)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    worst = 0
    remaining = set(children)
    while remaining:
        pid, status = os.wait()
        remaining.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, -signal.SIGTERM, -signal.SIGINT) and worst == 0:
            worst = 1
            forward(signal.SIGTERM, None)  # one worker failed (e.g. a port in use): stop all
    return worst
