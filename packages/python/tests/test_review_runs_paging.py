"""Review (runs lane): the TypeScript SDK pages a task's runs (lastRuns({ cursor }) and
nextCursor); the Python client has no cursor and no next cursor, so a Python caller can read the
newest N runs or every run, never the runs past the first page without reading all of them."""
import inspect

from quoll.task import Task, TaskRunList


def test_last_runs_takes_a_cursor_and_gives_the_next_one():
    assert "cursor" in inspect.signature(Task.last_runs).parameters
    assert hasattr(TaskRunList, "next_cursor")
