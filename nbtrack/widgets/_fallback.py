"""The static picture every widget's output carries beside the live view."""

from __future__ import annotations

from typing import Any


class StaticFallback:
    """Mixed into a widget (before the ipywidgets class) that has ``static_html()``: its output
    carries that HTML, which renderers without a widget manager (nbconvert, GitHub, a notebook
    opened without its kernel) show, and its ``repr`` as the text."""

    def static_html(self) -> str:
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}  # type: ignore[misc]
        bundle["text/plain"] = repr(self)
        bundle["text/html"] = self.static_html()
        return bundle


__all__ = ["StaticFallback"]
