"""Workspaces: models, pipelines and orchestrations live in one."""

from typing import Any, Dict, List, Sequence, Tuple

from ._format import PrintableFields, PrintableList
from ._http import HttpTransport
from ._http import segment as _q
from .connection import Connection, ConnectionList

__all__ = ["Workspace", "WorkspaceList"]


class Workspace(PrintableFields):
    """A workspace. Its fields are methods, as in the original SDK: ``ws.name()``, ``ws.id()``."""

    def __init__(self, http: HttpTransport, dto: Dict[str, Any]) -> None:
        self._http = http
        self._dto = dict(dto)

    def id(self) -> int:
        return int(self._dto["id"])

    def name(self) -> str:
        return str(self._dto["name"])

    def created_at(self) -> str:
        return str(self._dto["createdAt"])

    def is_default(self) -> bool:
        return bool(self._dto.get("isDefault", False))

    def add_connection(self, name: str) -> None:
        """Attaches an existing connection (by name) to this workspace. Attaching twice is a no-op."""
        self._http.send("PUT", f"/v1/workspaces/{self.id()}/connections/{_q(name)}")

    def remove_connection(self, name: str) -> None:
        """Detaches a connection from this workspace; the connection itself remains."""
        self._http.send("DELETE", f"/v1/workspaces/{self.id()}/connections/{_q(name)}")

    def list_connections(self) -> ConnectionList:
        """Connections attached to this workspace (prints with details ``*****``)."""
        dtos = self._http.json("GET", f"/v1/workspaces/{self.id()}/connections")
        return ConnectionList(Connection(self._http, d) for d in dtos)

    def to_dict(self) -> Dict[str, Any]:
        """The plain data: ``{"id", "name", "created_at", "is_default"}``."""
        return {"id": self.id(), "name": self.name(), "created_at": self.created_at(), "is_default": self.is_default()}

    def _fields(self) -> List[Tuple[str, Any]]:
        return [("name", self.name()), ("id", self.id()), ("created at", self.created_at()), ("default", self.is_default())]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other.id() == self.id()

    def __hash__(self) -> int:
        return hash(("workspace", self.id()))


class WorkspaceList(PrintableList[Workspace]):
    """Workspaces; prints ``name | id | created at | default`` or ``(no workspaces)``."""

    empty_text = "(no workspaces)"
    headers = ("name", "id", "created at", "default")

    def _rows(self) -> List[Sequence[Any]]:
        return [[w.name(), w.id(), w.created_at(), w.is_default()] for w in self]
