"""What code learns about the task run it is in (the environment a run gets from the server)."""

import json
import os
from typing import Any, Dict, Mapping, Optional

__all__ = ["in_task", "task_args"]


def in_task(env: Optional[Mapping[str, str]] = None) -> bool:
    """True exactly when the code runs inside a Quoll task run (``QUOLL_TASK_ID`` is set).

    Example::

        if quoll.in_task():
            print("running as task", os.environ["QUOLL_TASK_ID"])
    """
    env = os.environ if env is None else env
    return bool(env.get("QUOLL_TASK_ID"))


def task_args(env: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """The task's ``json_args`` (the parsed ``QUOLL_TASK_ARGS``), or ``{}`` outside a task.

    Example::

        args = quoll.task_args()
        pipeline_name = args.get("pipeline_name", "orchestrationpipeline")
    """
    env = os.environ if env is None else env
    raw = env.get("QUOLL_TASK_ARGS")
    if not raw:
        return {}
    parsed = json.loads(raw)
    return parsed if isinstance(parsed, dict) else {}
