"""Render postmortem facts through Jinja2 templates (Markdown and HTML), overridable by config.

A configured templates directory is searched first, so a team can replace one template and
keep the other; templates run sandboxed with strict undefined, so a typo fails loudly.
"""

from __future__ import annotations

import traceback
from functools import lru_cache
from pathlib import Path
from typing import Literal

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateError
from jinja2.loaders import BaseLoader
from jinja2.sandbox import SandboxedEnvironment

from bot.errors import ConfigError
from bot.postmortem import formatting
from bot.postmortem.facts import PostmortemFacts

Format = Literal["md", "html"]
DEFAULT_TEMPLATES = Path(__file__).with_name("templates")
TEMPLATE_NAMES: dict[str, str] = {"md": "postmortem.md.j2", "html": "postmortem.html.j2"}


def render(
    facts: PostmortemFacts,
    *,
    format: Format = "md",
    templates_dir: str | Path | None = None,
    chart_src: str | None = None,
    correction_url: str | None = None,
) -> str:
    """The postmortem as Markdown or HTML.

    ``chart_src`` is the chart's URL or data URI; ``correction_url`` adds the key-time form.
    """
    if format not in TEMPLATE_NAMES:
        raise ValueError(f"unknown postmortem format {format!r}; one of md, html")
    environment = _environment(str(templates_dir) if templates_dir else None)
    name = TEMPLATE_NAMES[format]
    where = name
    try:
        template = environment.get_template(name)
        where = template.filename or name
        return template.render(facts=facts, chart_src=chart_src, correction_url=correction_url)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None) or _template_line(exc, where)
        at = f"{where}:{line}" if line else where
        raise ConfigError(f"postmortem template {at}: {exc}") from exc


def _template_line(exc: BaseException, filename: str) -> int | None:
    # Errors raised while rendering carry no line; Jinja's rewritten traceback does.
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    return frames[-1].lineno if frames else None


@lru_cache(maxsize=8)
def _environment(templates_dir: str | None) -> SandboxedEnvironment:
    loaders: list[BaseLoader] = [FileSystemLoader(str(DEFAULT_TEMPLATES))]
    if templates_dir:
        if not Path(templates_dir).is_dir():
            raise ConfigError(f"postmortem.templates_dir: {templates_dir} is not a directory")
        loaders.insert(0, FileSystemLoader(templates_dir))
    environment = SandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(
        when=formatting.when,
        clock=formatting.clock,
        duration=formatting.duration,
        metric_value=formatting.metric_value,
        count=formatting.count,
        unit_of=formatting.unit_of,
        cell=table_cell,
    )
    return environment


def table_cell(value: object) -> str:
    """Text safe inside a Markdown table cell: no pipes or line breaks to break the row."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", "").replace("\n", " ")
