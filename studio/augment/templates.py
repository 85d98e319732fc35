"""Jinja prompt templates: the shipped defaults, checking a user's edit, rendering.

Templates run in Jinja's sandbox with StrictUndefined: a user edits them in the browser, so they must
not reach Python internals, and a misspelt variable must fail loudly at save time instead of sending
the teacher an empty hole.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

from studio.errors import TemplateError

MAX_TEMPLATE_CHARS = 20_000


@lru_cache(maxsize=1)
def _env() -> Any:  # jinja2 is imported lazily
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False,
                                         trim_blocks=False, autoescape=False)


def default_template(name: str) -> str:
    """The shipped template `studio/augment/prompts/<name>.jinja`."""
    return resources.files("studio.augment").joinpath("prompts", f"{name}.jinja").read_text(encoding="utf-8")


def check_template(source: str, variables: set[str], sample_context: dict[str, Any]) -> None:
    """Raise TemplateError unless `source` parses, uses only `variables`, and renders `sample_context`."""
    from jinja2 import TemplateSyntaxError, meta

    if not source.strip():
        raise TemplateError("The prompt template is empty. Write the prompt, or reset it to the default.")
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"The prompt template is {len(source):,} characters long; the limit is "
                            f"{MAX_TEMPLATE_CHARS:,}. Shorten it.")
    try:
        # find_undeclared_variables compiles the template, which is when unknown filters are caught.
        undeclared = meta.find_undeclared_variables(_env().parse(source))
    except TemplateSyntaxError as error:
        raise TemplateError(f"The prompt template has a Jinja error on line {error.lineno}: {error.message}. "
                            "Fix it and save again (the previous version is kept).") from None
    unknown = sorted(undeclared - variables)
    if unknown:
        names = ", ".join("{{ " + v + " }}" for v in unknown)
        raise TemplateError(f"The prompt template uses {names}, which this strategy does not provide. "
                            f"Available variables: {', '.join(sorted(variables))}.")
    render(source, sample_context)


def render(source: str, context: dict[str, Any]) -> str:
    """The prompt text. Raises TemplateError for a template that fails on this context."""
    from jinja2 import TemplateError as JinjaError

    try:
        text = _env().from_string(source).render(**context)
    except JinjaError as error:
        raise TemplateError(f"The prompt template failed to render: {error}. Check the variable names "
                            "and filters it uses.") from None
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as error:
        raise TemplateError(f"The prompt template failed to render: {error}.") from None
    text = text.strip()
    if not text:
        raise TemplateError("The prompt template renders to an empty prompt. Add the instructions for the teacher.")
    return text
