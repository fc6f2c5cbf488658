"""Names the original SDK exposes from ``wallaroo.object``, so ported scripts change only imports.

Example::

    import quoll as wallaroo
    from quoll.object import EntityNotFoundError
"""

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

#: The original SDK raises ``InvalidNameError`` for names it refuses; here they are validation errors.
InvalidNameError = ValidationError

__all__ = [
    "AuthError",
    "ConflictError",
    "EntityNotFoundError",
    "InvalidNameError",
    "NotDeployedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "QuollError",
    "ValidationError",
]
