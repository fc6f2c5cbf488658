"""Errors the client raises: every one is a :class:`QuollError` carrying a catalogue code.

The codes, their HTTP status and the class each becomes come from the one catalogue the
server and the TypeScript SDK share (``_error_codes.py`` is generated from it).
"""

import re
from typing import Any, Dict, Mapping, Optional, Type

from ._error_codes import ERROR_CODES

__all__ = [
    "QuollError",
    "NotFoundError",
    "EntityNotFoundError",
    "ConflictError",
    "ValidationError",
    "AuthError",
    "NotDeployedError",
    "PayloadTooLargeError",
    "error_from_code",
    "error_from_response",
    "pythonize",
]


class QuollError(Exception):
    """Base of every error the client raises for a server answer.

    Attributes:
        code: the stable code from the catalogue (``docs/errors.md``), e.g. ``"pipeline_not_found"``.
        message: what went wrong and how to fix it.
        status: HTTP status of the answer (0 when the server could not be reached or the
            client refused the input before sending it).
        details: extra machine-readable fields the server sent, or ``None``.
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 0,
        details: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details: Optional[Dict[str, Any]] = dict(details) if details is not None else None

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Picklable (multiprocessing, notebooks' parallel helpers) with its fields intact.
        return (type(self), (self.code, self.message, self.status, self.details))


class NotFoundError(QuollError, LookupError):
    """The named thing does not exist (or the token cannot see it)."""


#: The name the original SDK uses (``from wallaroo.object import EntityNotFoundError``).
EntityNotFoundError = NotFoundError


class ConflictError(QuollError):
    """The name is taken, or the state forbids the change."""


class ValidationError(QuollError, ValueError):
    """The input is invalid; the message names the bad value and the fix."""


class AuthError(QuollError):
    """A missing, wrong or insufficient token."""


class NotDeployedError(QuollError):
    """The pipeline is not deployed or not yet Running."""


class PayloadTooLargeError(QuollError):
    """The body is over a size cap."""


#: Which class each error kind of the catalogue becomes (every kind must be here; a test checks).
KIND_CLASSES: Dict[str, Type[QuollError]] = {
    "auth": AuthError,
    "validation": ValidationError,
    "payload_too_large": PayloadTooLargeError,
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "not_deployed": NotDeployedError,
    "internal": QuollError,
}


def error_from_code(
    code: str,
    message: str,
    status: int = 0,
    details: Optional[Mapping[str, Any]] = None,
) -> QuollError:
    """Builds the typed error for a catalogue code (an unknown code gives a plain QuollError)."""
    entry = ERROR_CODES.get(code)
    cls = KIND_CLASSES.get(entry["kind"], QuollError) if entry is not None else QuollError
    return cls(code, message, status, details)


_CALL = re.compile(r"\b([a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+)(?=\()")


def pythonize(message: str) -> str:
    """Server messages name SDK calls the TypeScript way (``buildPipeline("p")``); say them as this
    client spells them (``build_pipeline("p")``). Only names right before ``(`` change, so quoted
    values (a pipeline called ``myPipeline``) stay as they are."""
    return _CALL.sub(lambda m: re.sub(r"(?<!^)([A-Z])", r"_\1", m.group(1)).lower(), message)


def error_from_response(status: int, body: Any) -> QuollError:
    """Rebuilds the typed error from an error answer ``{"error": {"code", "message", "details"?}}``."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("code"), str) and err["code"] in ERROR_CODES:
        message = err.get("message")
        details = err.get("details")
        return error_from_code(
            err["code"],
            pythonize(message) if isinstance(message, str) else err["code"],
            status,
            details if isinstance(details, dict) else None,
        )
    return QuollError("internal_error", f"Unexpected HTTP {status} answer from the server.", status)
