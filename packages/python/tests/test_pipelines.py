import datetime
import json
import os
import tempfile
import time
import unittest

import quoll

from ._support import ServerTest, model_path, unique

ROW = [1.0, 2.0, 3.0, 4.5]


class ModelTests(ServerTest):
    def test_upload_model_reads_the_models_inputs_and_configure_returns_it(self) -> None:
        name = unique("m")
        model = self.wl.upload_model(name, model_path(), framework=quoll.Framework.ONNX)
        self.assertEqual(model.name(), name)
        self.assertEqual(len(model.sha()), 64)
        self.assertEqual([t["name"] for t in model.inputs()], ["tensor"])
        self.assertEqual([t["name"] for t in model.outputs()], ["scaled"])
        self.assertIs(model.configure(tensor_fields=["features"]), model)
        self.assertEqual(model.tensor_fields(), ["features"])
        self.assertEqual(self.wl.get_model(name).version(), model.version())
        again = self.wl.upload_model(name, model_path())
        self.assertNotEqual(again.version(), model.version())
        with open(model_path(), "rb") as f:
            from_bytes = self.wl.upload_model(unique("bytes"), f.read())
        self.assertEqual(from_bytes.sha(), model.sha())

    def test_bad_uploads_are_refused_before_or_by_the_server(self) -> None:
        with self.assertRaises(quoll.ValidationError):
            self.wl.upload_model(unique("m"), "/no/such/model.onnx")
        with self.assertRaises(quoll.ValidationError):
            self.wl.upload_model(unique("m"), model_path(), framework="tensorflow")
        with self.assertRaises(quoll.ValidationError) as caught:
            self.wl.upload_model(unique("m"), b"not an onnx model")
        self.assertEqual(caught.exception.code, "invalid_model")


class PipelineTests(ServerTest):
    def test_deploy_infer_records_and_undeploy(self) -> None:
        pipeline = self.deployed_pipeline()
        self.assertEqual(pipeline.status()["status"], "Running")
        result = pipeline.infer([{"tensor": ROW}, {"tensor": [0.5, 0.5, 0.5, 0.5]}])
        self.assertEqual(len(result), 2)
        self.assertEqual(list(result[0].keys()), ["time", "in.tensor", "out.scaled", "check_failures"])
        self.assertEqual(result[0]["out.scaled"], [2.0, 4.0, 6.0, 9.0])
        self.assertEqual(result[0]["check_failures"], 0)
        self.assertIsInstance(result[0]["time"], int)
        self.assertTrue(pipeline.url().startswith(self.wl.api_endpoint))
        pipeline.undeploy()
        self.assertEqual(pipeline.status()["status"], "Undeployed")
        with self.assertRaises(quoll.NotDeployedError):
            pipeline.infer([{"tensor": ROW}])

    def test_bad_inference_input_gets_a_clear_error(self) -> None:
        pipeline = self.deployed_pipeline()
        with self.assertRaises(quoll.ValidationError) as caught:
            pipeline.infer([{"tensor": [1.0, 2.0]}])
        self.assertEqual(caught.exception.code, "invalid_tensor_shape")
        with self.assertRaises(quoll.ValidationError) as caught:
            pipeline.infer([{"tensor": [float("nan")] * 4}])
        self.assertEqual(caught.exception.code, "non_numeric_value")
        with self.assertRaises(quoll.ValidationError):
            pipeline.infer({"tensor": ROW})
        with self.assertRaises(quoll.ValidationError):
            pipeline.infer("tensor")

    def test_infer_from_json_file_and_unknown_extensions(self) -> None:
        pipeline = self.deployed_pipeline()
        path = os.path.join(tempfile.mkdtemp(), "rows.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump([{"tensor": ROW}], f)
        result = pipeline.infer_from_file(path)
        # A DataFrame with pandas, records without: both have the column.
        first = result["out.scaled"][0] if not isinstance(result, list) else result[0]["out.scaled"]
        self.assertEqual(list(first), [2.0, 4.0, 6.0, 9.0])
        with self.assertRaises(quoll.ValidationError):
            pipeline.infer_from_file(path.replace(".json", ".csv"))

    def test_add_replace_remove_steps(self) -> None:
        model = self.wl.upload_model(unique("m"), model_path())
        pipeline = self.wl.build_pipeline(unique("steps"))
        pipeline.add_model_step(model).add_model_step(model)
        self.assertEqual(len(pipeline.steps()), 2)
        pipeline.replace_with_model_step(1, model)
        pipeline.remove_step(0)
        self.assertEqual([s["model"]["name"] for s in pipeline.steps()], [model.name()])
        with self.assertRaises(quoll.ValidationError) as caught:
            pipeline.remove_step(5)
        self.assertEqual(caught.exception.code, "invalid_step")
        pipeline.clear()
        self.assertEqual(pipeline.steps(), [])
        self.assertIn("steps         -", str(pipeline))

    def test_logs_newest_first_and_a_window_oldest_first(self) -> None:
        pipeline = self.deployed_pipeline()
        start = datetime.datetime.now()
        for i in range(3):
            pipeline.infer([{"tensor": [float(i)] * 4}])
        end = datetime.datetime.now() + datetime.timedelta(seconds=1)
        newest = pipeline.logs(limit=2, dataframe=False)
        self.assertEqual([r["in.tensor"][0] for r in newest], [2.0, 1.0])
        self.assertFalse(newest.truncated)
        window = pipeline.logs(start_datetime=start, end_datetime=end, dataframe=False)
        self.assertEqual([r["in.tensor"][0] for r in window], [0.0, 1.0, 2.0])
        with self.assertRaises(quoll.ValidationError):
            pipeline.logs(start_datetime=start)

    def test_export_logs_writes_json_lines(self) -> None:
        pipeline = self.deployed_pipeline()
        for i in range(5):
            pipeline.infer([{"tensor": [float(i)] * 4}])
        directory = tempfile.mkdtemp()
        summary = pipeline.export_logs(directory=directory, file_prefix="out", limit=10)
        self.assertEqual(summary["files"], [os.path.join(directory, "out-1.json")])
        with open(summary["files"][0], encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        self.assertEqual(len(rows), 5)
        self.assertEqual(rows[0]["out.scaled"], [8.0, 8.0, 8.0, 8.0])
        with self.assertRaises(quoll.ValidationError):
            pipeline.export_logs(directory=directory, data_size_limit="10 MB")

    def test_deploy_without_waiting_says_so_and_reaches_running(self) -> None:
        model = self.wl.upload_model(unique("m"), model_path())
        pipeline = self.wl.build_pipeline(unique("nowait"))
        pipeline.add_model_step(model)
        self.addCleanup(pipeline.undeploy)
        pipeline.deploy(wait_for_status=False)
        deadline = time.monotonic() + 30
        while pipeline.status()["status"] != "Running":
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)


if __name__ == "__main__":
    unittest.main()
