"""Pipelines: model steps that are deployed and serve inferences."""

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import _frames
from ._format import PrintableFields, PrintableList
from ._http import HttpTransport
from ._http import segment as _q
from ._logs import LogTime, export_logs, fetch_logs
from .errors import NotDeployedError, ValidationError
from .model import ModelVersion

__all__ = ["Pipeline", "PipelineList"]

_JSON = "application/json"
_ARROW_FILE = "application/vnd.apache.arrow.file"
#: Seconds ``infer`` waits for an answer unless told otherwise.
DEFAULT_INFER_TIMEOUT = 15.0


def _step_of(model: ModelVersion) -> Dict[str, Any]:
    if not isinstance(model, ModelVersion):
        raise ValidationError(
            "invalid_step", f"A step needs a ModelVersion (from upload_model or get_model), not {type(model).__name__}."
        )
    return {"modelName": model.name(), "modelVersion": model.version()}


def _snake(status: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(status)
    if "deployedAt" in out:
        out["deployed_at"] = out.pop("deployedAt")
    if isinstance(out.get("models"), list):
        out["models"] = [
            {("loaded_on" if k == "loadedOn" else k): v for k, v in m.items()} if isinstance(m, dict) else m
            for m in out["models"]
        ]
    return out


class Pipeline(PrintableFields):
    """A pipeline. ``deploy()`` persists the steps as a version and serves it; ``infer()`` runs it.

    Example::

        pipeline = client.build_pipeline("orchestrationpipeline")
        pipeline.add_model_step(model)
        pipeline.deploy()
        result = pipeline.infer([{"tensor": [4.0, 2.5, 2900.0, ...]}])
    """

    def __init__(self, http: HttpTransport, dto: Dict[str, Any]) -> None:
        self._http = http
        self._dto = dict(dto)

    def id(self) -> int:
        return int(self._dto["id"])

    def name(self) -> str:
        return str(self._dto["name"])

    def workspace_id(self) -> int:
        return int(self._dto["workspaceId"])

    def create_time(self) -> str:
        return str(self._dto["createdAt"])

    def last_update_time(self) -> str:
        return str(self._dto["updatedAt"])

    def deployed(self) -> bool:
        """Whether it was deployed when last fetched (``status()`` asks the server)."""
        return bool(self._dto.get("deployed"))

    def _path(self, suffix: str = "") -> str:
        return f"/v1/workspaces/{self.workspace_id()}/pipelines/{_q(self.name())}{suffix}"

    def _refresh(self) -> Dict[str, Any]:
        self._dto = self._http.json("GET", self._path())
        return self._dto

    def _put_steps(self, steps: Sequence[Dict[str, Any]]) -> "Pipeline":
        self._dto = self._http.json("PUT", self._path("/steps"), json={"steps": list(steps)})
        return self

    def _current_steps(self) -> List[Dict[str, Any]]:
        return [{"modelName": s["model"]["name"], "modelVersion": s["model"]["version"]} for s in self._refresh()["steps"]]

    def _check_index(self, index: int, length: int) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < length:
            raise ValidationError(
                "invalid_step", f"Step index {index!r} is out of range: the pipeline has {length} step(s) (0-based)."
            )

    def add_model_step(self, model: ModelVersion) -> "Pipeline":
        """Appends a step that runs `model`. Steps are persisted as a version at ``deploy()``."""
        step = _step_of(model)
        return self._put_steps(self._current_steps() + [step])

    def replace_with_model_step(self, index: int, model: ModelVersion) -> "Pipeline":
        """Replaces step `index` (0-based) with one that runs `model`."""
        steps = self._current_steps()
        self._check_index(index, len(steps))
        steps[index] = _step_of(model)
        return self._put_steps(steps)

    def remove_step(self, index: int) -> "Pipeline":
        """Removes step `index` (0-based)."""
        steps = self._current_steps()
        self._check_index(index, len(steps))
        del steps[index]
        return self._put_steps(steps)

    def clear(self) -> "Pipeline":
        """Removes every step."""
        return self._put_steps([])

    def steps(self) -> List[Dict[str, Any]]:
        """The current steps: ``[{"model": {"name", "version", "sha"}}]``."""
        return [dict(s) for s in self._refresh()["steps"]]

    def versions(self) -> List[Dict[str, Any]]:
        """Deployed versions, newest first: ``[{"version", "createdAt", "steps"}]``."""
        return list(self._http.json("GET", self._path("/versions")))

    def deploy(
        self,
        pipeline_name: Optional[str] = None,
        deployment_config: Optional[Dict[str, Any]] = None,
        wait_for_status: bool = True,
    ) -> "Pipeline":
        """Persists the steps as a new version and deploys it.

        By default waits until it is Running; a model that fails to load raises
        :class:`NotDeployedError` with the reason (a failed redeploy leaves the previous version
        serving). With ``wait_for_status=False`` it returns at once; poll ``status()``.

        Args:
            pipeline_name: accepted for the original's signature; must be this pipeline's name if given.
            deployment_config: deployment settings, e.g. ``{"workers": 2}``.
            wait_for_status: wait until Running (or failed).
        """
        if pipeline_name is not None and pipeline_name != self.name():
            raise ValidationError(
                "invalid_request",
                f'deploy(pipeline_name="{pipeline_name}") names another pipeline than "{self.name()}"; leave it out.',
            )
        config = deployment_config if deployment_config is not None else {}
        if not isinstance(config, dict):
            to_dict = getattr(config, "to_dict", None)
            config = to_dict() if callable(to_dict) else None
            if not isinstance(config, dict):
                raise ValidationError("invalid_request", 'deployment_config must be a dict like {"workers": 2}.')
        status = self._http.json(
            "POST", self._path("/deploy"), json={"wait": bool(wait_for_status), "config": config}, timeout=600
        )
        dto = self._refresh()
        if not wait_for_status:
            print(f"Deployment initiated for {self.name()}. Please check pipeline status.")
            return self
        versions = dto.get("versions") or []
        if status.get("status") != "Running" or status.get("version") != (versions[0] if versions else None):
            raise NotDeployedError(
                "pipeline_not_ready",
                f'Deployment of pipeline "{self.name()}" failed: {"; ".join(status.get("details") or [])}',
                503,
                {"status": status},
            )
        return self

    def undeploy(self) -> "Pipeline":
        """Stops serving. A no-op when not deployed."""
        self._http.json("POST", self._path("/undeploy"))
        self._refresh()
        return self

    def status(self) -> Dict[str, Any]:
        """Deployment status, e.g. ``{"status": "Running", "details": [], "version": ..., "models": [...]}``.

        ``status()["status"] == "Running"`` exactly when inference will succeed.
        """
        return _snake(self._http.json("GET", self._path("/status")))

    def url(self) -> str:
        """The HTTP inference endpoint of this pipeline."""
        return self._http.url(str(self._dto["inferencePath"]))

    # -- inference

    def _timeout(self, timeout: Optional[float]) -> float:
        t = DEFAULT_INFER_TIMEOUT if timeout is None else timeout
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
            raise ValidationError(
                "invalid_request", f"timeout is {t!r} but a positive number of seconds is required.", 0
            )
        return float(t)

    def _post(self, body: Any, content_type: str, accept: str, timeout: Optional[float]) -> bytes:
        res = self._http.send(
            "POST",
            str(self._dto["inferencePath"]),
            body=body,
            content_type=content_type,
            accept=accept,
            timeout=self._timeout(timeout),
        )
        return res.body

    def infer(self, tensor: Any, timeout: Optional[float] = None) -> Any:
        """Runs the deployed pipeline; the result has the type of the input.

        * a list of records (``[{"tensor": [...]}]``) → a list of records (``time`` in epoch ms);
        * a pandas DataFrame → a DataFrame (``time`` as datetime);
        * a pyarrow Table → a pyarrow Table.

        Result columns: ``time``, ``in.<column>`` per input column, ``out.<output>`` per model
        output (each cell a list), ``check_failures``.

        Args:
            tensor: the input rows.
            timeout: seconds to wait for the answer (default 15).
        """
        if _frames.is_arrow_table(tensor):
            data = self._post(_frames.table_to_ipc_file(tensor), _ARROW_FILE, _ARROW_FILE, timeout)
            return _frames.ipc_to_table(data)
        if _frames.is_dataframe(tensor):
            data = self._post(_frames.dataframe_to_json(tensor), _JSON, _JSON, timeout)
            return _frames.records_to_dataframe(json.loads(data), _frames.pandas_or_none())
        if isinstance(tensor, dict):
            raise ValidationError(
                "invalid_inference_input",
                "infer() takes a list of records; wrap a single record in a list: [{'tensor': [...]}].",
            )
        if not isinstance(tensor, (list, tuple)):
            raise ValidationError(
                "invalid_inference_input",
                f"infer() takes a list of records like [{{'tensor': [...]}}], a pandas DataFrame or a pyarrow Table, "
                f"not {type(tensor).__name__}.",
            )
        data = self._post(_frames.records_to_json(list(tensor)), _JSON, _JSON, timeout)
        return json.loads(data)

    def infer_from_file(self, filename: str, data_format: Optional[str] = None, timeout: Optional[float] = None) -> Any:
        """Runs the pipeline on a file.

        * ``.arrow`` (Arrow IPC file) → a pyarrow Table; without pyarrow, a DataFrame (with
          pandas) or records;
        * ``.json`` (pandas records, ``[{"tensor": [...]}]``) → a DataFrame with pandas, else records.

        Anything else is a :class:`ValidationError`. ``data_format`` (``"arrow"``/``"json"``)
        overrides the extension.
        """
        ext = (data_format or os.path.splitext(str(filename))[1].lstrip(".")).lower()
        if ext not in ("arrow", "json"):
            raise ValidationError(
                "invalid_inference_input",
                f'File "{filename}" is of type "{ext or "(none)"}", but only ".arrow" (Arrow IPC file) or ".json" '
                "(records) are accepted.",
            )
        with open(filename, "rb") as f:
            if ext == "arrow":
                pa = _frames.pyarrow_or_none()
                if pa is not None:
                    return _frames.ipc_to_table(self._post(f, _ARROW_FILE, _ARROW_FILE, timeout), pa)
                records = json.loads(self._post(f, _ARROW_FILE, _JSON, timeout))
            else:
                records = json.loads(self._post(f, _JSON, _JSON, timeout))
        pd = _frames.pandas_or_none()
        return _frames.records_to_dataframe(records, pd) if pd is not None else records

    # -- logs

    def logs(
        self,
        limit: Optional[int] = None,
        start_datetime: Optional[LogTime] = None,
        end_datetime: Optional[LogTime] = None,
        arrow: bool = False,
        dataframe: Optional[bool] = None,
        max_bytes: Optional[int] = None,
    ) -> Any:
        """Reads the pipeline's inference log.

        Without a range: the newest `limit` (default 100) rows, newest first. With
        `start_datetime` and `end_datetime` (both, inclusive; naive datetimes are local time):
        the rows in that window, oldest first. Giving one of the two is a ValidationError.

        Returns a DataFrame when pandas is installed (``df.attrs`` holds ``truncated``,
        ``schema_changed``, ``more_available``), else records (a list with those attributes);
        a pyarrow Table with ``arrow=True``. A result cut by the 10 MB cap prints a warning
        naming ``export_logs``.

        Example::

            pipeline.logs(start_datetime=task_start, end_datetime=datetime.datetime.now())
        """
        return fetch_logs(
            self._http,
            self._path("/logs"),
            limit=limit,
            start=start_datetime,
            end=end_datetime,
            arrow=arrow,
            dataframe=dataframe,
            max_bytes=max_bytes,
        )

    def export_logs(
        self,
        directory: Optional[str] = None,
        file_prefix: Optional[str] = None,
        data_size_limit: Optional[str] = None,
        limit: Optional[int] = None,
        start_datetime: Optional[LogTime] = None,
        end_datetime: Optional[LogTime] = None,
        arrow: bool = False,
    ) -> Dict[str, Any]:
        """Writes the inference log to ``<directory>/<file_prefix>-1.json`` (JSON Lines, ``time`` in
        epoch ms) or ``-1.arrow`` (``arrow=True``, needs pyarrow), a new numbered file whenever the
        schema changes, stopping at `data_size_limit` (default ``"100 MiB"``).

        Returns ``{"files", "rows", "bytes", "truncated", "more_available"}``.
        """
        return export_logs(
            self._http,
            self._path("/logs"),
            self.name(),
            directory=directory,
            file_prefix=file_prefix,
            data_size_limit=data_size_limit,
            limit=limit,
            start=start_datetime,
            end=end_datetime,
            arrow=arrow,
        )

    # -- printing

    def to_dict(self) -> Dict[str, Any]:
        """The plain data as the server sends it."""
        return dict(self._dto)

    def _fields(self) -> List[Tuple[str, Any]]:
        return [
            ("name", self.name()),
            ("created", self.create_time()),
            ("last_updated", self.last_update_time()),
            ("deployed", self.deployed()),
            ("versions", ", ".join(self._dto.get("versions") or []) or None),
            ("steps", ", ".join(s["model"]["name"] for s in self._dto.get("steps") or []) or None),
        ]


class PipelineList(PrintableList[Pipeline]):
    """Pipelines; prints ``name | created | last_updated | deployed | steps``."""

    empty_text = "(no pipelines)"
    headers = ("name", "created", "last_updated", "deployed", "steps")

    def _rows(self) -> List[Sequence[Any]]:
        return [
            [
                p.name(),
                p.create_time(),
                p.last_update_time(),
                p.deployed(),
                ", ".join(s["model"]["name"] for s in p.to_dict().get("steps") or []) or None,
            ]
            for p in self
        ]
