"""Orchestrations: user code uploaded as a zip, packaged in the background, run as tasks."""

import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ._format import PrintableFields, PrintableList, display_time
from ._http import HttpTransport
from ._http import segment as _q
from .errors import error_from_code
from .task import Task, TaskList

__all__ = ["Orchestration", "OrchestrationList", "PackagingLogLine", "PackagingLogs", "short_sha"]


def short_sha(sha: str) -> str:
    """``4dd816...df4e12``: the seed's short SHA in listings."""
    return sha if len(sha) <= 15 else f"{sha[:6]}...{sha[-6:]}"


class PackagingLogLine(str):
    """One packaging-log line; it *is* ``<time> <source> <text>`` and has the parts as attributes
    (``time``, ``source``: ``quoll``, ``pip``, ``npm`` or ``esbuild``, ``line``)."""

    time: str
    source: str
    line: str

    def __new__(cls, dto: Dict[str, Any]) -> "PackagingLogLine":
        self = super().__new__(cls, f"{dto['time']} {dto['source']} {dto['line']}")
        self.time = str(dto["time"])
        self.source = str(dto["source"])
        self.line = str(dto["line"])
        return self


class PackagingLogs(List[PackagingLogLine]):
    """A packaging log, oldest first; prints one line each."""

    def __str__(self) -> str:
        return "\n".join(self) if self else "(no packaging logs yet)"

    __repr__ = __str__


class Orchestration(PrintableFields):
    """An uploaded orchestration: ``pending_packaging`` → ``packaging`` → ``ready`` | ``error``.

    Example::

        orchestration = client.upload_orchestration(name="comprehensive sample", path="./remote_inference.zip")
        while orchestration.status() != "ready":
            time.sleep(5)
        task = orchestration.run_once(name="house price run once task", json_args={})
    """

    def __init__(self, http: HttpTransport, dto: Dict[str, Any]) -> None:
        self._http = http
        self._dto = dict(dto)

    def id(self) -> str:
        return str(self._dto["id"])

    def name(self) -> Optional[str]:
        """The name, or None when uploaded without one (as the original shows it)."""
        return self._dto.get("name") or None

    def file_name(self) -> str:
        return str(self._dto["fileName"])

    def sha(self) -> str:
        """SHA-256 (hex) of the uploaded zip."""
        return str(self._dto["sha"])

    def runtime(self) -> Optional[str]:
        """``python`` or ``node``: the language of its entrypoint."""
        return self._dto.get("runtime")

    def entrypoint(self) -> Optional[str]:
        return self._dto.get("entrypoint")

    def workspace_id(self) -> int:
        return int(self._dto["workspaceId"])

    def workspace_name(self) -> str:
        return str(self._dto["workspaceName"])

    def created_at(self) -> str:
        return str(self._dto["createdAt"])

    def updated_at(self) -> str:
        return str(self._dto["updatedAt"])

    def error(self) -> Optional[str]:
        """Why packaging failed (as of the last fetch), when it did."""
        return self._dto.get("error")

    def status(self) -> str:
        """The packaging status, re-read from the server."""
        self._dto = self._http.json("GET", f"/v1/orchestrations/{_q(self.id())}")
        return str(self._dto["status"])

    def wait_until_ready(self, timeout: float = 300.0, interval: float = 0.2) -> "Orchestration":
        """Polls until packaging is over; returns on ``ready``.

        Raises:
            ConflictError: ``orchestration_not_ready`` with the packaging error on ``error``.
            QuollError: ``timeout`` when it is still packaging after `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status == "ready":
                return self
            if status == "error":
                raise error_from_code(
                    "orchestration_not_ready",
                    f"Packaging of orchestration {self.id()} failed: {self.error() or 'see packaging_logs()'}",
                    0,
                    {"orchestrationId": self.id()},
                )
            if time.monotonic() > deadline:
                raise error_from_code(
                    "timeout", f"Orchestration {self.id()} is still {status}; see packaging_logs().", 0
                )
            time.sleep(interval)

    def packaging_logs(self) -> PackagingLogs:
        """What quoll and the installers (pip, npm) said while packaging, oldest first."""
        lines = self._http.json("GET", f"/v1/orchestrations/{_q(self.id())}/packaging-logs")
        return PackagingLogs(PackagingLogLine(d) for d in lines)

    def _create_task(self, body: Dict[str, Any]) -> Task:
        body = {k: v for k, v in body.items() if v is not None}
        return Task(self._http, self._http.json("POST", f"/v1/orchestrations/{_q(self.id())}/tasks", json=body))

    def run_once(
        self, name: str, json_args: Optional[Dict[str, Any]] = None, timeout: Optional[int] = None, debug: bool = False
    ) -> Task:
        """Runs the orchestration once, now (a ``Temporary Run``).

        Args:
            name: the task's name (not unique).
            json_args: given to the run as ``quoll.task_args()``.
            timeout: seconds the run may last before it is stopped as ``timed_out`` (default 900).
            debug: accepted for the original's signature; ignored.
        """
        return self._create_task({"type": "once", "name": name, "jsonArgs": json_args or {}, "timeout": timeout})

    def run_scheduled(
        self,
        name: str,
        schedule: str,
        json_args: Optional[Dict[str, Any]] = None,
        timeout: Optional[int] = None,
        timezone: Optional[str] = None,
        debug: bool = False,
    ) -> Task:
        """Runs the orchestration at every tick of a 5-field cron schedule (a ``Scheduled Run``).

        The seed's comma form ``"*/1, *, *, *, *"`` is accepted; an invalid schedule is a
        ValidationError. `timeout` bounds each run (default 900 s); `timezone` is an IANA name
        (default UTC).
        """
        return self._create_task(
            {
                "type": "scheduled",
                "name": name,
                "schedule": schedule,
                "jsonArgs": json_args or {},
                "timeout": timeout,
                "timezone": timezone,
            }
        )

    def run_continuously(self, name: str, json_args: Optional[Dict[str, Any]] = None) -> Task:
        """Keeps one run going, restarting it with backoff when it exits, until killed (a ``Continuous Run``)."""
        return self._create_task({"type": "continuous", "name": name, "jsonArgs": json_args or {}})

    def list_tasks(self, killed: bool = False) -> TaskList:
        """This orchestration's tasks, newest first (killed ones only with ``killed=True``)."""
        dtos = self._http.json("GET", f"/v1/orchestrations/{_q(self.id())}/tasks", query={"killed": killed or None})
        return TaskList(Task(self._http, d) for d in dtos)

    def to_dict(self) -> Dict[str, Any]:
        """The plain data as the server sends it."""
        return dict(self._dto)

    def _fields(self) -> List[Tuple[str, Any]]:
        return [
            ("ID", self.id()),
            ("Name", self.name()),
            ("File Name", self.file_name()),
            ("SHA", self.sha()),
            ("Status", self._dto.get("status")),
            ("Created At", display_time(self.created_at())),
            ("Updated At", display_time(self.updated_at())),
            ("Workspace ID", self.workspace_id()),
            ("Workspace Name", self.workspace_name()),
        ]


class OrchestrationList(PrintableList[Orchestration]):
    """Orchestrations, oldest first; prints the seed's table or ``(no orchestrations)``."""

    empty_text = "(no orchestrations)"
    headers = ("id", "name", "status", "filename", "sha", "created at", "updated at", "workspace id", "workspace name")

    def _rows(self) -> List[Sequence[Any]]:
        return [
            [
                o.id(),
                o.name(),
                o.to_dict().get("status"),
                o.file_name(),
                short_sha(o.sha()),
                display_time(o.created_at()),
                display_time(o.updated_at()),
                o.workspace_id(),
                o.workspace_name(),
            ]
            for o in self
        ]
