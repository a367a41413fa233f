"""One way into Ray for every job: the cluster named by ``--address`` or ``RAY_ADDRESS`` (``ray job submit`` sets
it), else an embedded local Ray started in-process.

The embedded Ray is ``address="local"`` (its own, never one already running on the machine) and bound to
loopback: its node address is 127.0.0.1, so the GCS, the raylet, the workers, the dashboard agent and the
autoscaler/dashboard metrics servers listen on 127.0.0.1 only (Ray 2.60 binds every interface otherwise, metrics
without authentication). It has no dashboard. Ray's own token authentication (on by default since 2.5x) stays
as Ray sets it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

# Ray Train's placement-group watchdog asks the state API, which only a dashboard serves: without one (the embedded
# Ray) it warns on every check, dozens of lines a minute that say nothing about the job.
_NOISY_WITHOUT_DASHBOARD = ("ray.train.v2._internal.execution.controller.placement_group_cleaner",)

LOOPBACK = "127.0.0.1"
# Ray resolves a node address of 127.0.0.1 to the machine's routable address unless it runs as a single-machine
# Ray (its Windows/macOS mode): this variable, read when ray is imported (ray_constants.ENABLE_RAY_CLUSTER), chooses.
_SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def quiet_worker_logs() -> None:
    """Worker-process setup hook of the embedded Ray (runs in every worker before it does anything)."""
    for name in _NOISY_WITHOUT_DASHBOARD:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def _single_machine() -> Iterator[None]:
    """Single-machine mode for ray.init and the processes it starts, then this process as it was (so a ``ray
    start`` launched later from here is not bound to loopback too)."""
    from ray._private import ray_constants

    before_env = os.environ.get(_SINGLE_MACHINE_ENV)
    before_const = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)  # Ray 2.60; tests/hostile checks the result
    os.environ[_SINGLE_MACHINE_ENV] = "0"
    if before_const is not None:  # this process imported ray before: the variable alone comes too late
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if before_const is not None:
            ray_constants.ENABLE_RAY_CLUSTER = before_const
        if before_env is None:
            os.environ.pop(_SINGLE_MACHINE_ENV, None)
        else:
            os.environ[_SINGLE_MACHINE_ENV] = before_env


def start_local(**kwargs: Any) -> None:
    """Start an embedded Ray of this process's own, listening on loopback only (``kwargs`` go to ``ray.init``:
    ``num_cpus``, ``log_to_driver``...)."""
    import ray

    options = {
        "address": "local",
        "include_dashboard": False,
        "_node_ip_address": LOOPBACK,
        "ignore_reinit_error": True,
        **kwargs,
    }
    with _single_machine():
        ray.init(**options)


def _on_loopback(address: str) -> bool:
    """Whether a GCS address (``host:port``, maybe ``ray://``) names this machine's loopback: a driver joining it
    must take 127.0.0.1 as its own node address, else Ray picks the routable one, finds no raylet there and waits."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def connect(address: str | None = None, log_to_driver: bool = True) -> None:
    """Join the Ray cluster at ``address`` (or ``RAY_ADDRESS``), else start an embedded local Ray on loopback
    without a dashboard (:func:`start_local`); nothing happens when this process is already connected."""
    import ray

    if ray.is_initialized():
        return
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        options: dict[str, Any] = {"address": address} if address else {}
        loopback = _on_loopback(target)  # an embedded Ray of another process: this driver must sit on loopback too
        with _single_machine() if loopback else contextlib.nullcontext():
            ray.init(
                **options,
                **({"_node_ip_address": LOOPBACK} if loopback else {}),
                ignore_reinit_error=True,
                log_to_driver=log_to_driver,
            )
        return
    # "local": start our own; ray.init() without an address would join any Ray already on the machine.
    start_local(
        log_to_driver=log_to_driver,
        runtime_env={"worker_process_setup_hook": f"{__name__}.{quiet_worker_logs.__name__}"},
    )
