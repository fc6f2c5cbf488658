"""Review (runs lane): the TypeScript SDK pages a task's runs (lastRuns({ cursor }) and
nextCursor); the Python client has no cursor and no next cursor, so a Python caller can read the
newest N runs or every run, never the runs past the first page without reading all of them."""
import inspect
import unittest

from quoll.task import Task, TaskRunList


def test_last_runs_takes_a_cursor_and_gives_the_next_one():
    assert "cursor" in inspect.signature(Task.last_runs).parameters
    assert hasattr(TaskRunList, "next_cursor")


class _FakeHttp:
    """Answers GET /v1/tasks/t1/runs from a list of five runs, newest first, like the server pages."""

    def __init__(self) -> None:
        self.runs = [
            {"id": f"r{i}", "taskId": "t1", "status": "success", "createdAt": "x", "updatedAt": "x"} for i in range(5)
        ]
        self.asked: list = []

    def send(self, method: str, path: str, query: dict) -> "_FakeResponse":
        self.asked.append((method, path, query))
        start = 0 if query.get("cursor") is None else int(str(query["cursor"])[1:]) + 1
        limit = query.get("limit")
        end = len(self.runs) if limit is None else min(len(self.runs), start + int(limit))
        more = limit is not None and end < len(self.runs)
        return _FakeResponse(self.runs[start:end], f"c{end - 1}" if more else None)


class _FakeResponse:
    def __init__(self, body: list, cursor: "str | None") -> None:
        self.body, self.cursor = body, cursor

    def json(self) -> list:
        return self.body

    def header(self, name: str) -> "str | None":
        return self.cursor if name == "x-quoll-next-cursor" else None


class LastRunsPagingTest(unittest.TestCase):
    def test_pages_follow_next_cursor_to_the_last_run(self) -> None:
        http = _FakeHttp()
        task = Task(http, {"id": "t1"})  # type: ignore[arg-type]
        page = task.last_runs(limit=2)
        seen = [r.id for r in page]
        while page.next_cursor is not None:
            page = task.last_runs(limit=2, cursor=page.next_cursor)
            seen += [r.id for r in page]
        self.assertEqual(seen, ["r0", "r1", "r2", "r3", "r4"])
        self.assertEqual([q["cursor"] for (_m, _p, q) in http.asked], [None, "c1", "c3"])
        self.assertIsNone(task.last_runs().next_cursor)
