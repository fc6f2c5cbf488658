import io
import os
import tempfile
import time
import unittest
import zipfile
from typing import Dict

import quoll

from ._support import ServerTest, unique

# A TypeScript orchestration: the client is the same whatever language the orchestration is in.
MAIN_TS = """
import { taskArgs } from '@quoll/client';
console.log('args ' + JSON.stringify(taskArgs()));
for (let i = 0; i < 3; i++) console.log('line ' + i);
console.error('to stderr');
if (taskArgs().fail) process.exit(3);
"""


def make_zip(files: Dict[str, str]) -> bytes:
    """A zip of `files`; the same files give the same bytes (fixed entry times)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), text)
    return buf.getvalue()


def wait_for(what: str, probe, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


class OrchestrationTests(ServerTest):
    def upload(self, files: Dict[str, str], name: str = "") -> quoll.Orchestration:
        return self.wl.upload_orchestration(bytes_buffer=make_zip(files), file_name="job.zip", name=name or None)

    def test_upload_by_path_packages_to_ready_and_lists(self) -> None:
        path = os.path.join(tempfile.mkdtemp(), "remote_inference.zip")
        with open(path, "wb") as f:
            f.write(make_zip({"main.ts": MAIN_TS}))
        name = unique("orch")
        orchestration = self.wl.upload_orchestration(name=name, path=path)
        self.assertEqual(orchestration.file_name(), "remote_inference.zip")
        self.assertEqual(orchestration.name(), name)
        self.assertIn(orchestration.status(), ("pending_packaging", "packaging", "ready"))
        orchestration.wait_until_ready(timeout=120)
        self.assertEqual(orchestration.status(), "ready")
        self.assertIn("ready", str(orchestration.packaging_logs()))
        listed = self.wl.list_orchestrations(workspace_name=self.workspace.name())
        self.assertIn(orchestration.id(), [o.id() for o in listed])
        self.assertIn(orchestration.sha()[:6] + "...", str(listed))
        unnamed = self.upload({"main.ts": MAIN_TS})
        self.assertIsNone(unnamed.name())
        self.assertEqual(self.wl.get_orchestration(unnamed.id()).sha(), orchestration.sha())

    def test_a_zip_without_an_entrypoint_is_refused_with_its_code(self) -> None:
        with self.assertRaises(quoll.ValidationError) as caught:
            self.upload({"README.md": "nothing to run"})
        self.assertEqual(caught.exception.code, "archive_no_entrypoint")
        with self.assertRaises(quoll.ValidationError):
            self.wl.upload_orchestration(bytes_buffer=b"not a zip", file_name="x.zip")
        with self.assertRaises(quoll.ValidationError):
            self.wl.upload_orchestration()

    def test_run_once_runs_with_its_args_and_the_logs_read_like_the_seed(self) -> None:
        orchestration = self.upload({"main.ts": MAIN_TS}).wait_until_ready(timeout=120)
        task = orchestration.run_once(name="once", json_args={"k": "v"}, timeout=60)
        self.assertEqual(task.task_type(), "Temporary Run")
        wait_for("started", lambda: True if task.status() == "started" else None)
        run = wait_for("a finished run", lambda: next((r for r in task.last_runs() if r.status != "running"), None))
        self.assertEqual(run.status, "success")
        self.assertEqual(run.exit_code, 0)
        logs = run.logs()
        texts = [line.line for line in logs]
        self.assertIn('args {"k":"v"}', texts)
        self.assertIn("line 2", texts)
        self.assertIn("stderr", [line.stream for line in logs if line.line == "to stderr"])
        self.assertRegex(logs[0], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}Z (stdout|stderr) F ")
        self.assertTrue(texts[-1].startswith("quoll: run finished: success"))
        self.assertEqual([line.line for line in run.logs(limit=1)], texts[-1:])
        followed = [line.line for line in run.follow_logs()]
        self.assertEqual(followed, texts)
        self.assertEqual(task.last_run_status(), "success")
        self.assertIn(task.id(), [t.id() for t in orchestration.list_tasks()])
        self.assertIn("Temporary Run", str(self.wl.list_tasks(workspace_name=self.workspace.name())))

    def test_a_failing_run_is_a_failure_with_its_exit_code(self) -> None:
        orchestration = self.upload({"main.ts": MAIN_TS}).wait_until_ready(timeout=120)
        task = orchestration.run_once(name="fails", json_args={"fail": True})
        run = wait_for("a finished run", lambda: next((r for r in task.last_runs() if r.status != "running"), None))
        self.assertEqual((run.status, run.exit_code), ("failure", 3))
        self.assertEqual(self.wl.get_task_by_id(task.id()).last_run_status(), "failure")

    def test_scheduled_tasks_check_their_schedule_and_kill_hides_them(self) -> None:
        orchestration = self.upload({"main.ts": MAIN_TS}).wait_until_ready(timeout=120)
        with self.assertRaises(quoll.ValidationError) as caught:
            orchestration.run_scheduled(name="bad", schedule="every minute")
        self.assertEqual(caught.exception.code, "invalid_schedule")
        task = orchestration.run_scheduled(name="sched", schedule="*/1, *, *, *, *", timeout=600)
        self.assertEqual(task.schedule(), "*/1 * * * *")
        self.assertEqual(task.kill(), "pending_kill")
        wait_for("killed", lambda: True if task.status() == "killed" else None)
        names = self.workspace.name()
        self.assertNotIn(task.id(), [t.id() for t in self.wl.list_tasks(workspace_name=names)])
        self.assertIn(task.id(), [t.id() for t in self.wl.list_tasks(killed=True, workspace_name=names)])
        self.assertFalse(self.wl.get_task_by_id(task.id()).active())


if __name__ == "__main__":
    unittest.main()
