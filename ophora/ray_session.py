"""One way into Ray for every job: the cluster named by ``--address`` or ``RAY_ADDRESS`` (``ray job submit`` sets
it), else an embedded local Ray started in-process."""

from __future__ import annotations

import logging
import os

# Ray Train's placement-group watchdog asks the state API, which only a dashboard serves: without one (the embedded
# Ray) it warns on every check, dozens of lines a minute that say nothing about the job.
_NOISY_WITHOUT_DASHBOARD = ("ray.train.v2._internal.execution.controller.placement_group_cleaner",)


def quiet_worker_logs() -> None:
    """Worker-process setup hook of the embedded Ray (runs in every worker before it does anything)."""
    for name in _NOISY_WITHOUT_DASHBOARD:
        logging.getLogger(name).setLevel(logging.ERROR)


def connect(address: str | None = None, log_to_driver: bool = True) -> None:
    """Join the Ray cluster at ``address`` (or ``RAY_ADDRESS``), else start an embedded local Ray without a
    dashboard; nothing happens when this process is already connected."""
    import ray

    if ray.is_initialized():
        return
    kwargs = {"ignore_reinit_error": True, "log_to_driver": log_to_driver}
    if address:
        kwargs["address"] = address
    elif not os.environ.get("RAY_ADDRESS"):
        # "local": start our own; ray.init() without an address would join any Ray already on the machine.
        kwargs.update(address="local", include_dashboard=False,
                      runtime_env={"worker_process_setup_hook": f"{__name__}.{quiet_worker_logs.__name__}"})
    ray.init(**kwargs)
