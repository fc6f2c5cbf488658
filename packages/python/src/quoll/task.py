"""Tasks (an orchestration run once, on a schedule or continuously) and their runs."""

import json
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ._format import PrintableFields, PrintableList, display_time
from ._http import HttpTransport
from ._http import segment as _q
from .errors import error_from_code, error_from_response

__all__ = ["Task", "TaskList", "TaskRun", "TaskRunList", "TaskRunLogLine", "TaskRunLogs"]

#: Seconds a ``follow_logs()`` stream may stay silent (the server sends heartbeats well within it).
FOLLOW_IDLE_TIMEOUT = 300.0


class TaskRunLogLine(str):
    """One captured line of a run's output.

    It *is* the line as the original prints it (the CRI log format)
    ``<RFC 3339 with ns>Z <stdout|stderr> F <text>``, and also has the parts as attributes.

    Attributes:
        time: RFC 3339 with nanoseconds, UTC.
        stream: ``"stdout"`` or ``"stderr"``.
        line: the text the run printed.
    """

    time: str
    stream: str
    line: str

    def __new__(cls, dto: Dict[str, Any]) -> "TaskRunLogLine":
        time = str(dto["time"])
        stamp = time if time.endswith("Z") else f"{time}Z"
        self = super().__new__(cls, f"{stamp} {dto['stream']} F {dto['line']}")
        self.time = time
        self.stream = str(dto["stream"])
        self.line = str(dto["line"])
        return self


class TaskRunLogs(List[TaskRunLogLine]):
    """A run's log lines, oldest first; prints one line each, or ``(no logs yet)``."""

    def __str__(self) -> str:
        return "\n".join(self) if self else "(no logs yet)"

    __repr__ = __str__


class TaskRun(PrintableFields):
    """One run of a task: its outcome and its captured output.

    Attributes are as fetched (``refresh()`` re-reads them): ``id`` (the original's "pod id",
    also ``run_id``), ``task_id``, ``status`` (``running``, ``success``, ``failure``,
    ``timed_out``, ``killed``), ``exit_code``, ``reason``, ``tick``, ``created_at``, ``updated_at``.

    Example::

        run = task.last_runs(limit=1)[0]
        print(run.status, run.logs(limit=20))
    """

    def __init__(self, http: HttpTransport, dto: Dict[str, Any]) -> None:
        self._http = http
        self._dto = dict(dto)
        self.id: str = str(dto["id"])
        self.run_id = self.id
        self.task_id: str = str(dto["taskId"])
        self.task = self.task_id
        self.status: str = str(dto["status"])
        self.exit_code: Optional[int] = dto.get("exitCode")
        self.reason: Optional[str] = dto.get("reason")
        self.tick: Optional[str] = dto.get("tick")
        self.created_at: str = str(dto["createdAt"])
        self.updated_at: str = str(dto["updatedAt"])

    def refresh(self) -> "TaskRun":
        """The same run, re-read from the server."""
        return TaskRun(self._http, self._http.json("GET", f"/v1/task-runs/{_q(self.id)}"))

    def logs(self, limit: Optional[int] = None) -> TaskRunLogs:
        """The run's captured output, oldest first; `limit` keeps the last N lines. A finished run's
        log ends with ``quoll: run finished: <status> (<reason>)``."""
        lines = self._http.json("GET", f"/v1/task-runs/{_q(self.id)}/logs", query={"limit": limit})
        return TaskRunLogs(TaskRunLogLine(d) for d in lines)

    def follow_logs(self, timeout: float = FOLLOW_IDLE_TIMEOUT) -> Iterator[TaskRunLogLine]:
        """The run's output as it is printed: existing lines first, then live ones, ending after
        the final status line.

        Raises:
            QuollError: ``shutting_down`` when the server closed the stream before the run
                finished; follow again once it is back.
            AuthError: ``invalid_token`` when the token was revoked or expired meanwhile (the
                server ends the stream).

        Example::

            for line in run.follow_logs():
                print(line)
        """
        with self._http.stream(
            "GET", f"/v1/task-runs/{_q(self.id)}/logs/follow", accept="text/event-stream", timeout=timeout
        ) as res:
            event = "message"
            data: List[str] = []
            for raw in res.lines():
                if raw == "":
                    if event == "end":
                        return
                    if event == "error" and data:
                        # The server ended the stream: the token (or session) was revoked or expired.
                        err = json.loads("\n".join(data))
                        status = err.get("status") if isinstance(err, dict) else None
                        raise error_from_response(
                            status if isinstance(status, int) else 0,
                            {"error": {"code": err.get("code"), "message": err.get("message")}}
                            if isinstance(err, dict)
                            else None,
                        )
                    if event == "line" and data:
                        yield TaskRunLogLine(json.loads("\n".join(data)))
                    event, data = "message", []
                    continue
                if raw.startswith(":"):
                    continue
                field, _, value = raw.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    event = value
                elif field == "data":
                    data.append(value)
        raise error_from_code(
            "shutting_down",
            f"The log stream of run {self.id} ended before the run finished (the server stopped or closed the "
            "stream); follow again to see the rest.",
            0,
            {"runId": self.id},
        )

    def to_dict(self) -> Dict[str, Any]:
        """The plain data as the server sends it."""
        return dict(self._dto)

    def _fields(self) -> List[Tuple[str, Any]]:
        return [
            ("Task", self.task_id),
            ("Pod ID", self.id),
            ("Status", self.status),
            ("Exit Code", self.exit_code),
            ("Reason", self.reason),
            ("Created At", display_time(self.created_at)),
            ("Updated At", display_time(self.updated_at)),
        ]


class TaskRunList(PrintableList[TaskRun]):
    """Runs, newest first; prints the seed's ``task id | pod id | status | created at | updated at``."""

    empty_text = "(no task runs)"
    headers = ("task id", "pod id", "status", "created at", "updated at")
    #: With ``last_runs(limit=...)``: pass it as ``cursor`` (with the same ``status``) for the next,
    #: older page; None on the last page (and without a limit). Slices and copies do not keep it.
    next_cursor: Optional[str] = None

    def __init__(self, items: Iterable[TaskRun] = (), next_cursor: Optional[str] = None) -> None:
        super().__init__(items)
        self.next_cursor = next_cursor

    def _rows(self) -> List[Sequence[Any]]:
        return [[r.task_id, r.id, r.status, display_time(r.created_at), display_time(r.updated_at)] for r in self]


class Task(PrintableFields):
    """A task. Identity fields are methods as in the original (``task.id()``, ``task.name()``);
    ``status()`` and ``last_run_status()`` re-read the server each call.

    Example::

        task = orchestration.run_once(name="house price run once", json_args={})
        while task.status() != "started":
            time.sleep(1)
        run = task.last_runs(limit=1)[0]
    """

    def __init__(self, http: HttpTransport, dto: Dict[str, Any]) -> None:
        self._http = http
        self._dto = dict(dto)

    def id(self) -> str:
        return str(self._dto["id"])

    def name(self) -> str:
        """Free text; not unique."""
        return str(self._dto["name"])

    def task_type(self) -> str:
        """``Temporary Run``, ``Scheduled Run`` or ``Continuous Run``."""
        return str(self._dto["type"])

    def schedule(self) -> Optional[str]:
        """The normalised cron expression of a scheduled task, else None."""
        return self._dto.get("schedule")

    def timezone(self) -> Optional[str]:
        return self._dto.get("timezone")

    def json_args(self) -> Dict[str, Any]:
        return json.loads(json.dumps(self._dto.get("jsonArgs") or {}))

    #: The original's name for the arguments.
    input_data = json_args

    def timeout(self) -> Optional[int]:
        """Seconds each run may last; None = no limit."""
        return self._dto.get("timeout")

    def orchestration_id(self) -> str:
        return str(self._dto["orchestrationId"])

    def workspace_id(self) -> int:
        return int(self._dto["workspaceId"])

    def workspace_name(self) -> str:
        return str(self._dto["workspaceName"])

    def killed(self) -> bool:
        """Whether the task was killed (as of the last fetch)."""
        return bool(self._dto.get("killed"))

    def active(self) -> bool:
        """The original's "Active": not killed."""
        return not self.killed()

    def status_reason(self) -> Optional[str]:
        """Why the task is in a notable state (e.g. a crash loop), else None."""
        return self._dto.get("statusReason")

    def created_at(self) -> str:
        return str(self._dto["createdAt"])

    def updated_at(self) -> str:
        return str(self._dto["updatedAt"])

    def _refetch(self) -> None:
        self._dto = self._http.json("GET", f"/v1/tasks/{_q(self.id())}")

    def status(self) -> str:
        """The task status, re-read: ``pending`` → ``started`` → ``pending_kill`` → ``killed``.
        A run-once task stays ``started`` after its run ends; the outcome is on the run."""
        self._refetch()
        return str(self._dto["status"])

    def last_run_status(self) -> str:
        """The status of the newest run, or ``"unknown"`` before the first."""
        self._refetch()
        return str(self._dto["lastRunStatus"])

    def kill(self) -> str:
        """Kills the task: no run starts after this, a running one is stopped. Returns ``"pending_kill"``."""
        self._dto = self._http.json("POST", f"/v1/tasks/{_q(self.id())}/kill")
        return "pending_kill"

    def last_runs(
        self, limit: Optional[int] = None, status: Optional[str] = None, cursor: Optional[str] = None
    ) -> TaskRunList:
        """The task's runs, newest first; `status` keeps only runs with it (``all`` for every run).
        With a `limit`, one page: its ``next_cursor`` (None on the last page), passed as `cursor`
        with the same `status`, gets the next, older page::

            page = task.last_runs(limit=100)
            while page.next_cursor is not None:
                page = task.last_runs(limit=100, cursor=page.next_cursor)
        """
        res = self._http.send(
            "GET", f"/v1/tasks/{_q(self.id())}/runs", query={"limit": limit, "status": status, "cursor": cursor}
        )
        return TaskRunList((TaskRun(self._http, r) for r in res.json()), next_cursor=res.header("x-quoll-next-cursor"))

    def get_run(self, run_id: str) -> TaskRun:
        """One run of this task by its id, wherever it is in the history (no paging needed). Raises
        ``NotFoundError`` (``task_run_not_found``) when no run has this id or it belongs to another task."""
        dto = self._http.json("GET", f"/v1/task-runs/{_q(run_id)}")
        if str(dto["taskId"]) != self.id():
            raise error_from_code(
                "task_run_not_found",
                f'Task {self.id()} has no run "{run_id}" (that run belongs to task {dto["taskId"]}).',
                404,
                {"runId": run_id, "taskId": self.id()},
            )
        return TaskRun(self._http, dto)

    def ticks(self, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        """Cron ticks of a scheduled task that produced no run, newest first: ``skipped`` (the previous
        run was still going) or ``missed`` (the server was down or late), with the reason."""
        return list(self._http.json("GET", f"/v1/tasks/{_q(self.id())}/ticks", query={"limit": limit}))

    def to_dict(self) -> Dict[str, Any]:
        """The plain data as the server sends it."""
        return json.loads(json.dumps(self._dto))

    def _fields(self) -> List[Tuple[str, Any]]:
        fields: List[Tuple[str, Any]] = [
            ("ID", self.id()),
            ("Name", self.name()),
            ("Last Run Status", self._dto.get("lastRunStatus")),
            ("Type", self.task_type()),
            ("Active", self.active()),
            ("Schedule", self.schedule() or "-"),
        ]
        if self.status_reason() is not None:
            fields.append(("Status Reason", self.status_reason()))
        fields += [
            ("Created At", display_time(self.created_at())),
            ("Updated At", display_time(self.updated_at())),
            ("Workspace ID", self.workspace_id()),
            ("Workspace Name", self.workspace_name()),
        ]
        return fields


class TaskList(PrintableList[Task]):
    """Tasks, newest first; prints the seed's table or ``(no tasks)``."""

    empty_text = "(no tasks)"
    headers = (
        "id",
        "name",
        "last run status",
        "type",
        "active",
        "schedule",
        "status reason",
        "created at",
        "updated at",
        "workspace id",
        "workspace name",
    )

    def _rows(self) -> List[Sequence[Any]]:
        return [
            [
                t.id(),
                t.name(),
                t.to_dict().get("lastRunStatus"),
                t.task_type(),
                t.active(),
                t.schedule() or "-",
                t.status_reason() or "-",
                display_time(t.created_at()),
                display_time(t.updated_at()),
                t.workspace_id(),
                t.workspace_name(),
            ]
            for t in self
        ]
