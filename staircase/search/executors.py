"""Where trials run: in the driver, in worker processes, or as Ray tasks on a cluster. The
driver asks and tells the study in every case, so all three give the same study."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing

from ..errors import StaircaseError
from .settings import SearchSettings
from .trial import run_trial

__all__ = ["InlineExecutor", "RayExecutor", "executor_for"]


def executor_for(s: SearchSettings, log):
    if s.ray_address:
        return RayExecutor(s.ray_address, s, log)
    if s.workers > 1:
        return cf.ProcessPoolExecutor(s.workers, mp_context=multiprocessing.get_context("spawn"))
    return InlineExecutor()


class InlineExecutor:
    def submit(self, fn, *args):
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed back to the driver like a worker's error
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass


class RayExecutor:
    """Trials as Ray tasks on an existing cluster (a GPU each where the cluster has them)."""

    def __init__(self, address: str, s: SearchSettings, log):
        try:
            import ray
        except ImportError:
            raise StaircaseError("--ray needs Ray: pip install 'staircase[ray]'") from None
        self.ray = ray
        check_reachable(address)
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                     include_dashboard=False if address == "local" else None)
        except Exception as exc:  # noqa: BLE001 - Ray raises several kinds for an unreachable cluster
            raise StaircaseError(f"cannot reach the Ray cluster at {address!r} ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); start one with "
                                 "`ray start --head` and pass its address, or leave out --ray") from None
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 and s.train_device != "cpu" else 0
        self.task = ray.remote(num_cpus=max(1, s.threads or 1), num_gpus=gpus)(run_trial)
        log(f"Ray: {address}, {ray.cluster_resources().get('CPU', 0):g} CPUs, "
            f"{ray.cluster_resources().get('GPU', 0):g} GPUs")

    def submit(self, fn, job):
        return self.task.remote(job).future()

    def shutdown(self, wait: bool = True) -> None:
        self.ray.shutdown()


def check_reachable(address: str) -> None:
    """One quick connection attempt, so an unreachable cluster fails at once (Ray itself
    retries for a minute)."""
    import socket

    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise StaircaseError(f"--ray {address!r} is not an address: give host:port, ray://host:port, auto or local")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise StaircaseError(f"cannot reach the Ray cluster at {address!r} ({exc.strerror or exc}); start one with "
                             "`ray start --head` and pass its address, or leave out --ray") from None
