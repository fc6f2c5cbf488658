"""Quoll's Python client: workspaces, models, pipelines, inference, connections, orchestrations
and tasks, with the original (Wallaroo) SDK's method names.

Standard library only; pandas DataFrames and pyarrow Tables are used when those libraries are
installed. Inside a Quoll task run ``quoll.Client()`` needs no arguments.

Example::

    import quoll

    wl = quoll.Client()  # QUOLL_URL + QUOLL_TOKEN, else ./.quoll/credentials.json
    pipeline = wl.pipelines_by_name("orchestrationpipeline")[0]
    pipeline.deploy()
    print(pipeline.infer([{"tensor": [4.0, 2.5, 2900.0, 5505.0, 2.0, 0.0, 0.0, 3.0, 8.0,
                                      2900.0, 0.0, 47.6063, -122.02, 2970.0, 5251.0, 12.0, 0.0, 0.0]}]))
"""

from .client import Client
from .connection import Connection, ConnectionList
from .errors import (
    AuthError,
    ConflictError,
    EntityNotFoundError,
    NotDeployedError,
    NotFoundError,
    PayloadTooLargeError,
    QuollError,
    ValidationError,
)
from .framework import Framework
from .model import ModelList, ModelVersion
from .orchestration import Orchestration, OrchestrationList, PackagingLogLine, PackagingLogs
from .pipeline import Pipeline, PipelineList
from .task import Task, TaskList, TaskRun, TaskRunList, TaskRunLogLine, TaskRunLogs
from .task_env import in_task, task_args
from .workspace import Workspace, WorkspaceList

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "Client",
    "ConflictError",
    "Connection",
    "ConnectionList",
    "EntityNotFoundError",
    "Framework",
    "ModelList",
    "ModelVersion",
    "NotDeployedError",
    "NotFoundError",
    "Orchestration",
    "OrchestrationList",
    "PackagingLogLine",
    "PackagingLogs",
    "PayloadTooLargeError",
    "Pipeline",
    "PipelineList",
    "QuollError",
    "Task",
    "TaskList",
    "TaskRun",
    "TaskRunList",
    "TaskRunLogLine",
    "TaskRunLogs",
    "ValidationError",
    "Workspace",
    "WorkspaceList",
    "__version__",
    "in_task",
    "task_args",
]
