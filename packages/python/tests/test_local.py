"""Parts that need no server: credentials, task environment, printing, data sizes and times."""

import datetime
import json
import os
import tempfile
import unittest

import quoll
from quoll._credentials import resolve_client_options
from quoll._format import display_time, render_table
from quoll._logs import parse_data_size, time_range, to_epoch_ms


class CredentialTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp()

    def write(self, path: str, content: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)

    def test_explicit_arguments_win(self) -> None:
        env = {"QUOLL_URL": "http://env", "QUOLL_TOKEN": "envtok"}
        self.assertEqual(resolve_client_options("http://x", "t", env, self.dir), ("http://x", "t"))

    def test_task_environment_comes_before_files(self) -> None:
        self.write(os.path.join(self.dir, ".quoll", "credentials.json"), json.dumps({"url": "http://file", "token": "f"}))
        env = {"QUOLL_URL": "http://env", "QUOLL_TOKEN": "envtok"}
        self.assertEqual(resolve_client_options(None, None, env, self.dir), ("http://env", "envtok"))

    def test_quoll_home_credentials_come_before_the_local_ones(self) -> None:
        self.write(os.path.join(self.dir, "home", "credentials.json"), json.dumps({"url": "http://home", "token": "h"}))
        self.write(os.path.join(self.dir, ".quoll", "credentials.json"), json.dumps({"url": "http://local", "token": "l"}))
        self.assertEqual(resolve_client_options(None, None, {"QUOLL_HOME": "home"}, self.dir), ("http://home", "h"))
        self.assertEqual(resolve_client_options(None, None, {}, self.dir), ("http://local", "l"))

    def test_nothing_found_is_an_auth_error_naming_the_fix(self) -> None:
        with self.assertRaises(quoll.AuthError) as caught:
            resolve_client_options(None, None, {}, self.dir)
        self.assertEqual(caught.exception.code, "unauthenticated")
        self.assertIn("QUOLL_URL", str(caught.exception))

    def test_a_broken_credentials_file_is_named(self) -> None:
        path = os.path.join(self.dir, ".quoll", "credentials.json")
        self.write(path, "{not json")
        with self.assertRaises(quoll.AuthError) as caught:
            resolve_client_options(None, None, {}, self.dir)
        self.assertIn(path, str(caught.exception))


class TaskEnvTests(unittest.TestCase):
    def test_in_task_follows_quoll_task_id(self) -> None:
        self.assertFalse(quoll.in_task({}))
        self.assertTrue(quoll.in_task({"QUOLL_TASK_ID": "t1"}))

    def test_task_args_parse_the_json_or_give_an_empty_dict(self) -> None:
        self.assertEqual(quoll.task_args({}), {})
        self.assertEqual(quoll.task_args({"QUOLL_TASK_ARGS": '{"a": 1, "b": [true]}'}), {"a": 1, "b": [True]})
        self.assertEqual(quoll.task_args({"QUOLL_TASK_ARGS": "[1, 2]"}), {})


class FormatTests(unittest.TestCase):
    def test_times_print_as_the_seed_does(self) -> None:
        self.assertEqual(display_time("2024-12-09T21:21:31.123Z"), "2024-09-Dec 21:21:31")
        self.assertEqual(display_time("2024-12-09T22:21:31.123456789+01:00"), "2024-09-Dec 21:21:31")
        self.assertEqual(display_time(None), "-")
        self.assertEqual(display_time("not a time"), "not a time")

    def test_tables_align_and_print_none_as_a_dash(self) -> None:
        self.assertEqual(
            render_table(["name", "n"], [["a", 1], ["bbb", None]]),
            "name  n\n----  -\na     1\nbbb   -",
        )

    def test_empty_lists_print_the_seeds_placeholders(self) -> None:
        self.assertEqual(str(quoll.TaskList()), "(no tasks)")
        self.assertEqual(str(quoll.ConnectionList()), "(no connections)")
        self.assertEqual(str(quoll.OrchestrationList()), "(no orchestrations)")
        self.assertEqual(str(quoll.TaskRunLogs()), "(no logs yet)")

    def test_a_run_log_line_is_the_cri_line_with_its_parts(self) -> None:
        line = quoll.TaskRunLogLine({"time": "2024-12-09T21:21:40.373619457Z", "stream": "stdout", "line": "hi there"})
        self.assertEqual(line, "2024-12-09T21:21:40.373619457Z stdout F hi there")
        self.assertEqual((line.stream, line.line), ("stdout", "hi there"))


class LogArgumentTests(unittest.TestCase):
    def test_data_sizes(self) -> None:
        self.assertEqual(parse_data_size("1.5 MiB"), 1572864)
        self.assertEqual(parse_data_size("10MiB"), 10 * 1024**2)
        self.assertEqual(parse_data_size("1 gib"), 1024**3)
        for bad in ("10 MB", "MiB", "-1 MiB", "0 KiB"):
            with self.assertRaises(quoll.ValidationError) as caught:
                parse_data_size(bad)
            self.assertEqual(caught.exception.code, "invalid_data_size")

    def test_naive_datetimes_are_local_time_and_aware_ones_are_exact(self) -> None:
        naive = datetime.datetime(2024, 5, 17, 12, 0, 0)
        self.assertEqual(to_epoch_ms("start", naive), int(naive.timestamp() * 1000))
        aware = datetime.datetime(2024, 5, 17, 12, 0, 0, tzinfo=datetime.timezone.utc)
        self.assertEqual(to_epoch_ms("start", aware), 1715947200000)
        self.assertEqual(to_epoch_ms("start", "2024-05-17T12:00:00Z"), 1715947200000)
        self.assertEqual(to_epoch_ms("start", 1715947200000), 1715947200000)

    def test_one_bound_without_the_other_or_a_reversed_range_is_refused(self) -> None:
        now = datetime.datetime.now()
        for start, end in ((now, None), (None, now), (now, now - datetime.timedelta(seconds=1))):
            with self.assertRaises(quoll.ValidationError) as caught:
                time_range(start, end)
            self.assertEqual(caught.exception.code, "invalid_time_range")
        with self.assertRaises(quoll.ValidationError):
            to_epoch_ms("start", "yesterday")


if __name__ == "__main__":
    unittest.main()
