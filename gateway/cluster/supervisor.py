"""The supervisor of WORKERS=N: starts N copies of its own command, one per worker, restarts
a worker that dies, and passes SIGTERM/SIGINT on so that each worker drains."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
ENV_INDEX = "GATEWAY_WORKER_INDEX"
ENV_DIR = "GATEWAY_WORKER_DIR"


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """What a worker process learns from the supervisor's environment."""

    index: int
    count: int
    run_dir: str

    @property
    def paths(self) -> list[str]:
        """The hand-off socket of every worker, by index."""
        return [os.path.join(self.run_dir, f"w{i}.sock") for i in range(self.count)]

    def node_ids(self, own: str) -> list[str]:
        """Every worker's node id, given this worker's (`worker_node_id`)."""
        suffix = worker_node_id("", self.index)
        base = own[: -len(suffix)] if own.endswith(suffix) else own
        return [worker_node_id(base, i) for i in range(self.count)]

    @property
    def path(self) -> str:
        """This worker's own hand-off socket."""
        return self.paths[self.index]


def worker_node_id(node_id: str, index: int) -> str:
    """The node id of worker `index` of the node `node_id`."""
    return f"{node_id}-w{index}"


def worker_identity(env: Mapping[str, str], count: int) -> WorkerIdentity | None:
    """This process's place among the workers, or None when it was not started as one."""
    raw, run_dir = env.get(ENV_INDEX), env.get(ENV_DIR)
    if raw is None or not run_dir:
        return None
    index = int(raw)
    if not 0 <= index < count:
        raise ValueError(f"{ENV_INDEX}={raw} but WORKERS={count}")
    return WorkerIdentity(index, count, run_dir)


@dataclass
class RestartPolicy:
    """A worker that exits on its own is started again after `delay` seconds, unless
    `max_restarts` restarts happened within `window` seconds (then the node stops: a worker
    that cannot stay up is a fault for the operator, not something to retry forever)."""

    delay: float = 1.0
    max_restarts: int = 5
    window: float = 60.0
    _times: list[float] = field(default_factory=list)

    def allow(self, now: float) -> bool:
        self._times = [t for t in self._times if now - t < self.window]
        if len(self._times) >= self.max_restarts:
            return False
        self._times.append(now)
        return True


class Supervisor:
    def __init__(self, count: int, argv: Sequence[str], env: Mapping[str, str], *, stop_timeout: float = 15.0,
                 policy: RestartPolicy | None = None) -> None:
        self.count = count
        self.argv = list(argv)
        self.env = dict(env)
        self.stop_timeout = stop_timeout
        self.policy = policy or RestartPolicy()
        self.run_dir = tempfile.mkdtemp(prefix="izh-w-")
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = False

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        env = {**self.env, ENV_INDEX: str(index), ENV_DIR: self.run_dir}
        proc = await asyncio.create_subprocess_exec(*self.argv, env=env, preexec_fn=_die_with_parent(os.getpid()))
        log.info("worker %d started (pid %d)", index, proc.pid)
        self.procs[index] = proc
        return proc

    async def _keep(self, index: int) -> int:
        """Runs worker `index` until the node stops; its exit code when it gave up."""
        while True:
            proc = await self._spawn(index)
            code = await proc.wait()
            if self._stopping:
                return 0
            log.error("worker %d (pid %d) exited with %s", index, proc.pid, code)
            if not self.policy.allow(time.monotonic()):
                log.error("worker %d keeps exiting: stopping the node", index)
                return code or 1
            await asyncio.sleep(self.policy.delay)
            if self._stopping:
                return 0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        keepers = [asyncio.create_task(self._keep(i)) for i in range(self.count)]
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopper, *keepers], return_when=asyncio.FIRST_COMPLETED)
            code = 0 if stopper in done else max(t.result() for t in done if t is not stopper)
            log.info("stopping %d workers", self.count)
            await self.stop()
            for t in keepers:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            return code
        finally:
            stopper.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            shutil.rmtree(self.run_dir, ignore_errors=True)

    async def stop(self) -> None:
        """SIGTERM to every worker (each drains), SIGKILL to those still up after `stop_timeout`."""
        self._stopping = True
        live = [p for p in self.procs.values() if p.returncode is None]
        for p in live:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in live)), self.stop_timeout)
        except TimeoutError:
            for p in live:
                if p.returncode is None:
                    log.error("worker pid %d did not stop in %.0fs: killed", p.pid, self.stop_timeout)
                    with contextlib.suppress(ProcessLookupError):
                        p.kill()
            await asyncio.gather(*(p.wait() for p in live))


def _die_with_parent(parent: int) -> Callable[[], None]:
    """For the child, between fork and exec: SIGTERM it (so it drains and exits) when the
    supervisor dies, even by SIGKILL (Linux `PR_SET_PDEATHSIG`); elsewhere a no-op."""
    def setup() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return setup


def own_command(drop: Sequence[str] = ()) -> list[str]:
    """The command line that started this process (`python -m gateway serve …`, or the
    bench's wrapper) without the arguments in `drop`, for the workers to run the same."""
    return [sys.executable, *(a for a in sys.orig_argv[1:] if a not in drop)]
