"""Model frameworks (the original SDK's ``wallaroo.framework.Framework``); only ONNX is served."""

import enum

__all__ = ["Framework"]


class Framework(str, enum.Enum):
    """A model's framework; pass ``Framework.ONNX`` (or ``"onnx"``) to ``upload_model``."""

    ONNX = "onnx"
