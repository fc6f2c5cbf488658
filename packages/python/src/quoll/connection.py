"""Connections: named, typed details (URLs, credentials …) the server keeps encrypted."""

from typing import Any, Dict, List, Sequence, Tuple

from ._format import PrintableFields, PrintableList
from ._http import HttpTransport
from ._http import segment as _q

__all__ = ["Connection", "ConnectionList", "DETAILS_MASK"]

#: What every print of a connection shows in place of its details.
DETAILS_MASK = "*****"


def _linked(names: Sequence[str]) -> str:
    return "[" + ", ".join(f"'{n}'" for n in names) + "]"


class Connection(PrintableFields):
    """A connection. The object never holds the details: ``details()`` fetches them each time
    (an audited read), so no print, log or ``repr`` of it can show them.

    Example::

        connection = client.get_connection(name="houseprice_arrow_table")
        host = connection.details()["host"]
    """

    __slots__ = ("_http", "_dto")

    def __init__(self, http: HttpTransport, dto: Dict[str, Any]) -> None:
        self._http = http
        # Field by field: whatever else an answer carries never reaches this object.
        self._dto = {
            "id": dto["id"],
            "name": dto["name"],
            "type": dto["type"],
            "createdAt": dto["createdAt"],
            "workspaceNames": list(dto.get("workspaceNames", [])),
        }

    def id(self) -> str:
        return str(self._dto["id"])

    def name(self) -> str:
        return str(self._dto["name"])

    def connection_type(self) -> str:
        """The user-defined type, e.g. ``HTTPFILE``."""
        return str(self._dto["type"])

    #: Short alias of :meth:`connection_type`.
    type = connection_type

    def created_at(self) -> str:
        """When it was created (ISO 8601), as the seed prints it."""
        return str(self._dto["createdAt"])

    def workspace_names(self) -> List[str]:
        """Names of the workspaces it is attached to (as of when this object was fetched)."""
        return list(self._dto["workspaceNames"])

    def details(self) -> Dict[str, Any]:
        """The full, unmasked details, read from the server (recorded in its audit trail).

        Inside a task run every value read this way is replaced by ``*****`` in the run's logs.
        """
        dto = self._http.json("GET", f"/v1/connections/{_q(self.name())}/details")
        return dict(dto["details"])

    def delete_connection(self) -> None:
        """Deletes the connection; it is detached from every workspace."""
        self._http.send("DELETE", f"/v1/connections/{_q(self.name())}")

    def to_dict(self) -> Dict[str, Any]:
        """The plain data, without details."""
        return {
            "id": self.id(),
            "name": self.name(),
            "type": self.connection_type(),
            "created_at": self.created_at(),
            "workspace_names": self.workspace_names(),
        }

    def _fields(self) -> List[Tuple[str, Any]]:
        return [
            ("Name", self.name()),
            ("Connection Type", self.connection_type()),
            ("Details", DETAILS_MASK),
            ("Created At", self.created_at()),
            ("Linked Workspaces", _linked(self._dto["workspaceNames"])),
        ]


class ConnectionList(PrintableList[Connection]):
    """Connections; prints the seed's ``name | connection type | details | created at | linked workspaces``."""

    empty_text = "(no connections)"
    headers = ("name", "connection type", "details", "created at", "linked workspaces")

    def _rows(self) -> List[Sequence[Any]]:
        return [
            [c.name(), c.connection_type(), DETAILS_MASK, c.created_at(), _linked(c.workspace_names())] for c in self
        ]
