"""The optional OpenCV module, imported once on first use (None when it is not installed)."""

from __future__ import annotations

from typing import Any

_cv2: Any = None
_checked = False


def cv2_module() -> Any:
    """The ``cv2`` module, or None when OpenCV is not installed."""
    global _cv2, _checked
    if not _checked:
        _checked = True
        try:
            import cv2

            _cv2 = cv2
        except ImportError:  # pragma: no cover - exercised only without the dependency
            _cv2 = None
    return _cv2


def available() -> bool:
    """Whether OpenCV can be used."""
    return cv2_module() is not None
