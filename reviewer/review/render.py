"""Prompt rendering, pure: Jinja2 templates from `prompts/` (system and user parts) plus one job's data
give the text of one request. `StrictUndefined` makes a typo in a template an error, not an empty
string. A repository's own `prompts_dir` is searched before the built-in templates.

Variables available to every template:
    repo          "owner/name"
    pr            number, title, author, body, url, base_ref, head_ref, head_sha, labels (list of str)
    diff          the unified diff to review (files left out already removed), each new-side line
                  prefixed with its line number
    files         the file paths in that diff, in diff order (a path with a control character in git's
                  quoted form, `"a\\tb.py"`, as `omitted` shows it too)
    omitted       files left out of the review: list of {path, reason} (ignored, binary, over budget)
    unlisted_files  how many changed files GitHub did not list at all (it lists at most 3,000), 0 if none
    instructions  the repository's extra instructions, central and from .github/reviewer.yml ("" when none)
    model         the model id the request is sent to
    incremental   True when only the changes since the last reviewed commit are shown
    since_sha     that commit ("" when not incremental)
    previous_summary  the summary of the earlier review ("" when none)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reviewer.errors import TemplateError

if TYPE_CHECKING:  # loaded by the first render: the config's template check needs no Jinja2
    import jinja2


@dataclass(frozen=True)
class RenderedPrompt:
    system: str
    user: str


def builtin_prompts_dir() -> Path:
    """`reviewer/prompts` in an installed wheel; the repository's top-level `prompts/` in a checkout."""
    packaged = Path(str(resources.files("reviewer"))) / "prompts"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "prompts"


def _search_path(prompts_dir: Path | None) -> list[str]:
    dirs = [prompts_dir] if prompts_dir else []
    return [str(d) for d in [*dirs, builtin_prompts_dir()]]


def template_exists(name: str, prompts_dir: Path | None) -> bool:
    return all(
        any((Path(d) / f"{name}.{part}.j2").is_file() for d in _search_path(prompts_dir))
        for part in ("system", "user")
    )


@functools.lru_cache(maxsize=32)
def _environment(prompts_dir: Path | None) -> jinja2.Environment:
    """One environment per templates folder, so each template is compiled once per process
    (Jinja2 re-reads a template only when its file changed)."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_search_path(prompts_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # prompts are plain text, not HTML
        keep_trailing_newline=False,
    )


def render_prompt(template: str, variables: Mapping[str, Any], prompts_dir: Path | None = None) -> RenderedPrompt:
    import jinja2

    env = _environment(prompts_dir)
    parts = []
    for part in ("system", "user"):
        name = f"{template}.{part}.j2"
        try:
            parts.append(env.get_template(name).render(**variables).strip())
        except jinja2.TemplateNotFound:
            raise TemplateError(f"template {name} not found", "add it to prompts_dir or use the default "
                                "template 'review'") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template {name}: {exc.message}", "use only the documented variables: repo, pr, "
                                "diff, files, omitted, unlisted_files, instructions, model, incremental, "
                                "since_sha, previous_summary") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template {name} line {exc.lineno}: {exc.message}") from None
    return RenderedPrompt(system=parts[0], user=parts[1])
