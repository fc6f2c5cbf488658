"""Helpers of the client's tests: the server they run against and optional libraries.

The server comes from ``QUOLL_URL`` and ``QUOLL_TOKEN`` (``npm test`` starts one and sets them);
``QUOLL_TEST_MODEL`` is the path of a float32 [N, 4] → [N, 4] "times two" ONNX model
(input ``tensor``, output ``scaled``) the same runner writes. Without them the server tests skip,
unless ``QUOLL_TEST_REQUIRE`` names what must be present (``server``, ``pandas``, ``pyarrow``):
then a missing piece fails the test instead of skipping it.
"""

import importlib
import os
import unittest
import uuid
from typing import Any, Tuple

import quoll


def _required(feature: str) -> bool:
    return feature in {f.strip() for f in os.environ.get("QUOLL_TEST_REQUIRE", "").split(",")}


def need(feature: str, why: str) -> None:
    """Skips the test for `why`, or fails it when `feature` is required."""
    if _required(feature):
        raise AssertionError(f"{why} (QUOLL_TEST_REQUIRE has {feature})")
    raise unittest.SkipTest(why)


def server() -> Tuple[str, str]:
    url, token = os.environ.get("QUOLL_URL"), os.environ.get("QUOLL_TOKEN")
    if not url or not token:
        need("server", "no server: set QUOLL_URL and QUOLL_TOKEN (npm test does)")
    return str(url), str(token)


def client() -> quoll.Client:
    url, token = server()
    return quoll.Client(url=url, token=token)


def model_path() -> str:
    path = os.environ.get("QUOLL_TEST_MODEL")
    if not path or not os.path.isfile(path):
        need("server", "no test model: set QUOLL_TEST_MODEL to a float32 [N,4] times-two ONNX model (npm test does)")
    return str(path)


def library(name: str) -> Any:
    """The module, or a skip (a failure when required) when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        need(name, f"{name} is not installed in this Python")


def unique(prefix: str) -> str:
    """A name no other test run uses (tests share one server)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class ServerTest(unittest.TestCase):
    """A test against the server with its own workspace made current."""

    wl: quoll.Client
    workspace: quoll.Workspace

    @classmethod
    def setUpClass(cls) -> None:
        cls.wl = client()
        cls.workspace = cls.wl.get_workspace(unique("py"), create_if_not_exist=True)
        cls.wl.set_current_workspace(cls.workspace)

    def deployed_pipeline(self) -> quoll.Pipeline:
        """A pipeline running the times-two model, deployed."""
        model = self.wl.upload_model(unique("double"), model_path()).configure(tensor_fields=["tensor"])
        pipeline = self.wl.build_pipeline(unique("pl"))
        pipeline.add_model_step(model)
        pipeline.deploy()
        self.addCleanup(pipeline.undeploy)
        return pipeline
