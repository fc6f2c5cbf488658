"""Model versions: one uploaded ONNX file each."""

from typing import Any, Dict, List, Optional, Sequence, Tuple

from ._format import PrintableFields, PrintableList
from ._http import HttpTransport
from ._http import segment as _q
from .errors import ValidationError

__all__ = ["ModelVersion", "ModelList", "check_framework"]


def check_framework(framework: Any) -> None:
    """Only ONNX is served: ``None``, ``"onnx"`` or ``Framework.ONNX`` pass."""
    value = getattr(framework, "value", framework)
    if framework is not None and str(value).lower() != "onnx":
        raise ValidationError(
            "invalid_request", f'Framework "{value}" is not supported; only "onnx" (Framework.ONNX) is.'
        )


def _io(tensors: Sequence[Dict[str, Any]]) -> str:
    return "; ".join(
        f"{t['name']}: {t['type']}[{','.join('?' if d is None else str(d) for d in t['shape'])}]" for t in tensors
    )


class ModelVersion(PrintableFields):
    """One uploaded version of a model; ``configure()`` sets how request columns map to it."""

    def __init__(self, http: HttpTransport, dto: Dict[str, Any]) -> None:
        self._http = http
        self._dto = dict(dto)

    def id(self) -> int:
        return int(self._dto["id"])

    def name(self) -> str:
        return str(self._dto["name"])

    def version(self) -> str:
        """UUID of this version."""
        return str(self._dto["version"])

    def sha(self) -> str:
        """SHA-256 (hex) of the uploaded bytes."""
        return str(self._dto["sha"])

    def file_name(self) -> str:
        return str(self._dto["fileName"])

    def workspace_id(self) -> int:
        return int(self._dto["workspaceId"])

    def inputs(self) -> List[Dict[str, Any]]:
        """The model's inputs as the file declares them: ``[{"name", "type", "shape"}]``."""
        return [dict(t) for t in self._dto["inputs"]]

    def outputs(self) -> List[Dict[str, Any]]:
        """The model's outputs: ``[{"name", "type", "shape"}]``."""
        return [dict(t) for t in self._dto["outputs"]]

    def tensor_fields(self) -> Optional[List[str]]:
        """The configured input column names, or None (map by name)."""
        fields = self._dto.get("config", {}).get("tensorFields")
        return list(fields) if fields is not None else None

    def batch_config(self) -> Optional[str]:
        return self._dto.get("config", {}).get("batchConfig")

    def created_at(self) -> str:
        return str(self._dto["createdAt"])

    def configure(
        self,
        runtime: Optional[str] = None,
        tensor_fields: Optional[Sequence[str]] = None,
        batch_config: Optional[str] = None,
    ) -> "ModelVersion":
        """Sets how request columns map to the model and returns this version, configured.

        Args:
            runtime: the framework, as the original SDK's first argument (``"onnx"``); checked only.
            tensor_fields: input column names, one per model input, in input order.
            batch_config: ``"single"`` runs one row at a time.

        Example::

            model = client.upload_model("orchestrationmodel", "./models/rf_model.onnx").configure(tensor_fields=["tensor"])
        """
        check_framework(runtime)
        body: Dict[str, Any] = {}
        if tensor_fields is not None:
            if isinstance(tensor_fields, str):
                raise ValidationError(
                    "invalid_model_config",
                    f'tensor_fields must be a list of column names like ["{tensor_fields}"], not a string.',
                )
            body["tensorFields"] = list(tensor_fields)
        if batch_config is not None:
            body["batchConfig"] = batch_config
        self._dto = self._http.json(
            "PATCH",
            f"/v1/workspaces/{self.workspace_id()}/models/{_q(self.name())}/versions/{self.version()}/config",
            json=body,
        )
        return self

    def to_dict(self) -> Dict[str, Any]:
        """The plain data as the server sends it."""
        return dict(self._dto)

    def _fields(self) -> List[Tuple[str, Any]]:
        fields = self.tensor_fields()
        return [
            ("name", self.name()),
            ("version", self.version()),
            ("file name", self.file_name()),
            ("sha", self.sha()),
            ("inputs", _io(self._dto["inputs"])),
            ("outputs", _io(self._dto["outputs"])),
            ("tensor fields", ", ".join(fields) if fields else None),
            ("created at", self.created_at()),
        ]


class ModelList(PrintableList[ModelVersion]):
    """Model versions, newest first; prints ``name | version | file name | sha | created at``."""

    empty_text = "(no models)"
    headers = ("name", "version", "file name", "sha", "created at")

    def _rows(self) -> List[Sequence[Any]]:
        return [[m.name(), m.version(), m.file_name(), m.sha(), m.created_at()] for m in self]
