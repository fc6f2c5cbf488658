"""The client: the entry point of the Python SDK."""

import os
from typing import Any, Dict, Optional, Sequence, Union

from ._credentials import resolve_client_options
from ._http import DEFAULT_TIMEOUT, HttpTransport
from ._http import segment as _q
from .connection import Connection, ConnectionList
from .errors import ValidationError
from .model import ModelList, ModelVersion, check_framework
from .orchestration import Orchestration, OrchestrationList
from .pipeline import Pipeline, PipelineList
from .task import Task, TaskList
from .task_env import in_task, task_args
from .workspace import Workspace, WorkspaceList

__all__ = ["Client"]

PathOrBytes = Union[str, "os.PathLike[str]", bytes, bytearray]


class Client:
    """A connection to one Quoll server, with the original SDK's method names in snake_case.

    ``Client()`` finds its server by itself: ``QUOLL_URL`` + ``QUOLL_TOKEN`` (set inside every task
    run), else ``$QUOLL_HOME/credentials.json``, else ``./.quoll/credentials.json``.

    Args:
        url: server URL, e.g. ``http://127.0.0.1:8470`` (also accepted as ``api_endpoint``).
        token: bearer token.
        request_timeout: seconds a request may wait for the server (default 60).
        auth_type: accepted for the original's signature and ignored, as the original does in tasks.

    Example::

        import quoll
        wl = quoll.Client()
        workspace = wl.get_workspace("orchestrationworkspace", create_if_not_exist=True)
        wl.set_current_workspace(workspace)
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        api_endpoint: Optional[str] = None,
        request_timeout: Optional[float] = None,
        auth_type: Optional[str] = None,
        auth_endpoint: Optional[str] = None,
        interactive: Optional[bool] = None,
    ) -> None:
        del auth_type, auth_endpoint, interactive  # the original's login options; tokens need none
        base, tok = resolve_client_options(url or api_endpoint, token)
        self._http = HttpTransport(base, tok, DEFAULT_TIMEOUT if request_timeout is None else float(request_timeout))
        self._current: Optional[Workspace] = None

    @property
    def api_endpoint(self) -> str:
        """Base URL of the server."""
        return self._http.base_url

    url = api_endpoint

    def __repr__(self) -> str:
        return f"quoll.Client(url={self.api_endpoint!r})"

    # -- workspaces

    def create_workspace(self, name: str) -> Workspace:
        """Creates a workspace; a taken name is a ConflictError."""
        return Workspace(self._http, self._http.json("POST", "/v1/workspaces", json={"name": name}))

    def list_workspaces(self) -> WorkspaceList:
        """Every workspace this token can see."""
        return WorkspaceList(Workspace(self._http, w) for w in self._http.json("GET", "/v1/workspaces"))

    def get_workspace(self, name: str, create_if_not_exist: bool = False) -> Workspace:
        """A workspace by name; NotFoundError unless `create_if_not_exist`."""
        dto = self._http.json(
            "GET",
            f"/v1/workspaces/by-name/{_q(name)}",
            query={"createIfNotExist": True if create_if_not_exist else None},
        )
        return Workspace(self._http, dto)

    def set_current_workspace(self, workspace: Workspace) -> Workspace:
        """Makes `workspace` the default for model, pipeline and orchestration calls; returns it."""
        if not isinstance(workspace, Workspace):
            raise ValidationError(
                "invalid_request",
                f"set_current_workspace() takes a Workspace (from get_workspace), not {type(workspace).__name__}.",
            )
        self._current = workspace
        return workspace

    def get_current_workspace(self) -> Workspace:
        """The current workspace: the one set, else the token's default workspace."""
        if self._current is None:
            self._current = Workspace(self._http, self._http.json("GET", "/v1/me")["workspace"])
        return self._current

    def who_am_i(self) -> Dict[str, Any]:
        """Who the token is: ``{"kind": "admin"|"workspace", "workspace": {...}, "subject": ...}``."""
        return dict(self._http.json("GET", "/v1/me"))

    def _ws(self) -> int:
        return self.get_current_workspace().id()

    # -- models

    def upload_model(
        self,
        name: str,
        path: PathOrBytes,
        framework: Any = None,
        *,
        tensor_fields: Optional[Sequence[str]] = None,
        batch_config: Optional[str] = None,
        file_name: Optional[str] = None,
    ) -> ModelVersion:
        """Uploads an ONNX model into the current workspace from a path or bytes; the same name
        again makes a new version.

        Example::

            model = wl.upload_model("orchestrationmodel", "./models/rf_model.onnx").configure(tensor_fields=["tensor"])
        """
        check_framework(framework)
        query: Dict[str, Any] = {
            "name": name,
            "tensorFields": ",".join(tensor_fields) if tensor_fields else None,
            "batchConfig": batch_config,
        }
        ws = self._ws()
        if isinstance(path, (bytes, bytearray)):
            query["fileName"] = file_name or f"{name}.onnx"
            dto = self._http.json("POST", f"/v1/workspaces/{ws}/models", body=bytes(path), query=query, timeout=600)
            return ModelVersion(self._http, dto)
        filename = os.fspath(path)
        if not os.path.isfile(filename):
            raise ValidationError(
                "invalid_request", f'Model file "{filename}" does not exist or is not a file; give the path of an .onnx file.'
            )
        query["fileName"] = file_name or os.path.basename(filename)
        with open(filename, "rb") as f:
            dto = self._http.json("POST", f"/v1/workspaces/{ws}/models", body=f, query=query, timeout=600)
        return ModelVersion(self._http, dto)

    def get_model(self, name: str, version: Optional[str] = None) -> ModelVersion:
        """The newest version of a model, or the given version."""
        dto = self._http.json("GET", f"/v1/workspaces/{self._ws()}/models/{_q(name)}", query={"version": version})
        return ModelVersion(self._http, dto)

    def list_models(self) -> ModelList:
        """Every model version in the current workspace, newest first."""
        return ModelList(ModelVersion(self._http, m) for m in self._http.json("GET", f"/v1/workspaces/{self._ws()}/models"))

    # -- pipelines

    def build_pipeline(self, pipeline_name: str) -> Pipeline:
        """Creates a pipeline, or returns the existing one of that name."""
        return Pipeline(
            self._http, self._http.json("POST", f"/v1/workspaces/{self._ws()}/pipelines", json={"name": pipeline_name})
        )

    def get_pipeline(self, name: str) -> Pipeline:
        """A pipeline by name; NotFoundError when there is none."""
        return Pipeline(self._http, self._http.json("GET", f"/v1/workspaces/{self._ws()}/pipelines/{_q(name)}"))

    def pipelines_by_name(self, pipeline_name: str) -> PipelineList:
        """Pipelines with this name (at most one per workspace).

        Raises:
            EntityNotFoundError: when there is none, as the original does.
        """
        return PipelineList([self.get_pipeline(pipeline_name)])

    def list_pipelines(self) -> PipelineList:
        """Every pipeline in the current workspace."""
        return PipelineList(Pipeline(self._http, p) for p in self._http.json("GET", f"/v1/workspaces/{self._ws()}/pipelines"))

    # -- connections

    def create_connection(self, name: str, connection_type: str, details: Dict[str, Any]) -> Connection:
        """Creates a connection: a named, typed details dict the server keeps encrypted. Names are
        unique per instance (a taken one is a ConflictError); admin tokens only."""
        dto = self._http.json(
            "POST", "/v1/connections", json={"name": name, "type": connection_type, "details": details}
        )
        return Connection(self._http, dto)

    def list_connections(self) -> ConnectionList:
        """Every connection this token can see; prints with details ``*****``."""
        return ConnectionList(Connection(self._http, d) for d in self._http.json("GET", "/v1/connections"))

    def get_connection(self, name: str) -> Connection:
        """A connection by name; NotFoundError when there is none (or this token cannot see it)."""
        return Connection(self._http, self._http.json("GET", f"/v1/connections/{_q(name)}"))

    # -- orchestrations and tasks

    def upload_orchestration(
        self,
        bytes_buffer: Optional[bytes] = None,
        path: Optional[Union[str, "os.PathLike[str]"]] = None,
        name: Optional[str] = None,
        file_name: Optional[str] = None,
    ) -> Orchestration:
        """Uploads an orchestration zip into the current workspace; it answers at once in
        ``pending_packaging`` and is packaged in the background.

        Give `path` (the file name is its base name) or `bytes_buffer` (with `file_name`,
        default ``"_"``). A zip that breaks the rules (no entrypoint, an entry escaping the root,
        a zip bomb) is a ValidationError / PayloadTooLargeError and nothing is stored.

        Example::

            orchestration = wl.upload_orchestration(name="comprehensive sample", path="./remote_inference.zip")
        """
        query = {"name": name or ""}
        ws = self._ws()
        if path is not None:
            filename = os.fspath(path)
            if not os.path.isfile(filename):
                raise ValidationError(
                    "invalid_request", f'Orchestration file "{filename}" does not exist or cannot be read.'
                )
            query["fileName"] = os.path.basename(filename)
            with open(filename, "rb") as f:
                dto = self._http.json(
                    "POST", f"/v1/workspaces/{ws}/orchestrations", body=f, content_type="application/zip",
                    query=query, timeout=600,
                )
        elif isinstance(bytes_buffer, (bytes, bytearray)):
            query["fileName"] = file_name or "_"
            dto = self._http.json(
                "POST", f"/v1/workspaces/{ws}/orchestrations", body=bytes(bytes_buffer),
                content_type="application/zip", query=query, timeout=600,
            )
        else:
            raise ValidationError(
                "invalid_request", "Orchestration upload requires either bytes_buffer or path to an orchestration zip."
            )
        return Orchestration(self._http, dto)

    def list_orchestrations(self, workspace_name: Optional[str] = None) -> OrchestrationList:
        """Orchestrations of every workspace this token can see (or of `workspace_name`), oldest first."""
        dtos = self._http.json("GET", "/v1/orchestrations", query={"workspaceName": workspace_name})
        return OrchestrationList(Orchestration(self._http, d) for d in dtos)

    def get_orchestration(self, orchestration_id: str) -> Orchestration:
        """An orchestration by id; NotFoundError when there is none."""
        return Orchestration(self._http, self._http.json("GET", f"/v1/orchestrations/{_q(orchestration_id)}"))

    def list_tasks(self, killed: bool = False, workspace_name: Optional[str] = None) -> TaskList:
        """Tasks of every workspace this token can see (or of `workspace_name`), newest first;
        killed ones only with ``killed=True``."""
        dtos = self._http.json("GET", "/v1/tasks", query={"killed": killed or None, "workspaceName": workspace_name})
        return TaskList(Task(self._http, d) for d in dtos)

    def get_task_by_id(self, task_id: str) -> Task:
        """A task by id; NotFoundError when there is none."""
        return Task(self._http, self._http.json("GET", f"/v1/tasks/{_q(task_id)}"))

    get_task = get_task_by_id

    # -- task environment

    @staticmethod
    def in_task() -> bool:
        """True inside a task run."""
        return in_task()

    @staticmethod
    def task_args() -> Dict[str, Any]:
        """The task's ``json_args`` (``{}`` outside a task)."""
        return task_args()
