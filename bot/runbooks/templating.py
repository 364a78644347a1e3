"""Jinja2 inside runbook values: sandboxed, strict about undefined names, rendered per value.

Each string is rendered on its own (never the whole YAML text) so errors keep their line. A
string that is one expression, such as ``"{{ params.percent }}"``, yields the expression's own
value (an integer stays an integer); any other template yields text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.runtime import Undefined
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from bot.runbooks.problems import FieldPath

_ENVIRONMENT = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_ONE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expression>.*)\}\}\s*$", re.DOTALL)


class TemplateProblem(Exception):
    """A value that does not render; ``path`` is relative to the value rendered."""

    def __init__(self, path: FieldPath, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


def is_template(value: str) -> bool:
    """Whether the string holds Jinja2 syntax."""
    return "{{" in value or "{%" in value or "{#" in value


def render_value(value: Any, context: Mapping[str, Any], path: FieldPath = ()) -> Any:
    """Render every string inside ``value`` (dicts and lists included) against ``context``."""
    if isinstance(value, str):
        return _render_string(value, context, path)
    if isinstance(value, dict):
        return {key: render_value(item, context, (*path, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context, (*path, index)) for index, item in enumerate(value)]
    return value


def _render_string(text: str, context: Mapping[str, Any], path: FieldPath) -> Any:
    if not is_template(text):
        return text
    try:
        match = _ONE_EXPRESSION.match(text)
        expression = match.group("expression") if match else None
        if expression is not None and "{{" not in expression and "}}" not in expression:
            compiled = _ENVIRONMENT.compile_expression(expression, undefined_to_none=False)
            result = compiled(**context)
            if isinstance(result, Undefined):
                str(result)  # raises UndefinedError naming the missing variable
            return result
        return _ENVIRONMENT.from_string(text).render(**context)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(path, f"template syntax error: {exc.message}") from None
    except UndefinedError as exc:
        raise TemplateProblem(path, f"undefined variable: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateProblem(path, f"not allowed in a runbook template: {exc}") from None
    except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        raise TemplateProblem(path, f"template error: {exc}") from None


class SampleMapping(dict[str, Any]):
    """A stand-in for a model's target or watch when checking a runbook for no model in
    particular: every key exists, so only genuinely unknown top-level names are reported."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"
