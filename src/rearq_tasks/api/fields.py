"""Form fields of the argument filters and the search language: parsed while the filter form
validates, so a bad value is django-filter's usual ``400 {"<parameter>": [...]}``."""

from __future__ import annotations

from typing import Any

from django import forms

from rearq_tasks.queries import language
from rearq_tasks.queries.arguments import ArgumentError, parse_containment

# The documented shape of ``kwargs``/``args`` is a representative subset (flat, short), so
# that every value a schema-driven client generates is accepted; any JSON object/array is.
_JSON_SCALAR = r'(-?[1-9][0-9]{0,17}|0|"[A-Za-z0-9 _.@-]{0,40}"|true|false|null)'
_JSON_PAIR = rf'"[A-Za-z_][A-Za-z0-9_]{{0,30}}": ?{_JSON_SCALAR}'
JSON_OBJECT = {
    "type": "string",
    "format": "json",
    "pattern": rf"^\{{({_JSON_PAIR}(, ?{_JSON_PAIR}){{0,3}})?\}}$",
}
JSON_ARRAY = {
    "type": "string",
    "format": "json",
    "pattern": rf"^\[({_JSON_SCALAR}(, ?{_JSON_SCALAR}){{0,3}})?\]$",
}


class ContainmentField(forms.CharField):
    """A JSON object (``shape=dict``) or array (``list``) to look for in a job's arguments."""

    def __init__(self, *args: Any, shape: type[dict] | type[list] = dict, **kwargs: Any) -> None:
        kwargs.pop("max_length", None)
        super().__init__(*args, **kwargs)
        self.shape = shape

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            return parse_containment(text, self.shape)
        except ArgumentError as exc:
            raise forms.ValidationError(str(exc), code="invalid") from None


class SearchField(forms.CharField):
    """The search language (:mod:`rearq_tasks.queries.language`), parsed while validating."""

    def to_python(self, value: Any) -> language.Query | None:
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            return language.parse(text)
        except language.QueryError as exc:
            raise forms.ValidationError(str(exc), code="invalid") from None
