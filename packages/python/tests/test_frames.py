"""DataFrame and Arrow in/out: run where pandas / pyarrow are installed (required where the runner says so)."""

import unittest

from ._support import ServerTest, library

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.25, 0.5, 0.75, 1.0]]


class DataFrameTests(ServerTest):
    def test_a_dataframe_in_gives_a_dataframe_out(self) -> None:
        pd = library("pandas")
        pipeline = self.deployed_pipeline()
        result = pipeline.infer(pd.DataFrame({"tensor": ROWS}))
        self.assertIsInstance(result, pd.DataFrame)
        self.assertEqual(list(result.columns), ["time", "in.tensor", "out.scaled", "check_failures"])
        self.assertEqual(len(result), 2)
        self.assertEqual(list(result["out.scaled"][1]), [0.5, 1.0, 1.5, 2.0])
        self.assertTrue(pd.api.types.is_datetime64_any_dtype(result["time"]))
        # numpy values in cells are sent as plain numbers.
        import numpy as np

        result = pipeline.infer(pd.DataFrame({"tensor": [np.array(r, dtype=np.float32) for r in ROWS]}))
        self.assertEqual(list(result["out.scaled"][0]), [2.0, 4.0, 6.0, 8.0])

    def test_logs_are_a_dataframe_with_their_flags(self) -> None:
        pd = library("pandas")
        pipeline = self.deployed_pipeline()
        pipeline.infer([{"tensor": r} for r in ROWS])
        logs = pipeline.logs()
        self.assertIsInstance(logs, pd.DataFrame)
        self.assertEqual(len(logs), 2)
        self.assertFalse(logs.attrs["truncated"])
        self.assertTrue(pd.api.types.is_datetime64_any_dtype(logs["time"]))


class ArrowFileWithoutPyarrowTests(ServerTest):
    def test_an_arrow_file_works_with_or_without_pyarrow(self) -> None:
        import os

        path = os.environ.get("QUOLL_TEST_ARROW")
        if not path:
            raise unittest.SkipTest("no QUOLL_TEST_ARROW file (npm test writes one)")
        pipeline = self.deployed_pipeline()
        result = pipeline.infer_from_file(path)
        try:
            import pyarrow

            self.assertIsInstance(result, pyarrow.Table)
            values = result.column("out.scaled").to_pylist()
        except ImportError:
            # Without pyarrow the answer comes back as JSON: a DataFrame with pandas, else records.
            values = list(result["out.scaled"]) if not isinstance(result, list) else [r["out.scaled"] for r in result]
        self.assertEqual([list(v) for v in values], [[2.0, 4.0, 6.0, 8.0], [1.0, 2.0, 3.0, 4.0]])


class ArrowTests(ServerTest):
    def table(self):  # type: ignore[no-untyped-def]
        pa = library("pyarrow")
        return pa.table({"tensor": pa.array(ROWS, type=pa.list_(pa.float32(), 4))})

    def test_a_table_in_gives_a_table_out(self) -> None:
        pa = library("pyarrow")
        pipeline = self.deployed_pipeline()
        result = pipeline.infer(self.table())
        self.assertIsInstance(result, pa.Table)
        self.assertEqual(result.column_names, ["time", "in.tensor", "out.scaled", "check_failures"])
        self.assertEqual(result.column("out.scaled").to_pylist()[0], [2.0, 4.0, 6.0, 8.0])
        batch = self.table().to_batches()[0]
        self.assertEqual(pipeline.infer(batch).num_rows, 2)

    def test_infer_from_an_arrow_file_and_arrow_logs(self) -> None:
        pa = library("pyarrow")
        import os
        import tempfile

        pipeline = self.deployed_pipeline()
        path = os.path.join(tempfile.mkdtemp(), "rows.arrow")
        table = self.table()
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        result = pipeline.infer_from_file(path)
        self.assertIsInstance(result, pa.Table)
        self.assertEqual(result.num_rows, 2)
        logs = pipeline.logs(arrow=True)
        self.assertIsInstance(logs, pa.Table)
        self.assertEqual(logs.num_rows, 2)
        summary = pipeline.export_logs(directory=tempfile.mkdtemp(), arrow=True)
        with pa.OSFile(summary["files"][0], "rb") as source:
            self.assertEqual(pa.ipc.open_file(source).read_all().num_rows, 2)


if __name__ == "__main__":
    unittest.main()
