"""The per-repository options, declared once in `RepoOptions` (the `defaults` section): each field
carries its default, its bounds and an `Opt` saying whether `.github/reviewer.yml` may set it and how an
override combines with the base (replace, concatenate, append text, or a nested merge). The rest is
derived from that declaration and never written out again:

- `RepoEntry` (a `repositories[]` entry) and `ReviewRules` (the repository file) by `overrides()`: the
  options that layer may set, each optional (None = not set), bounds kept, option groups such as `Skip`
  as their own override shape;
- `RepoSettings`, the frozen value the rest of the code reads: the options plus `name` and
  `monthly_budget_micro_usd`, with `schedule` holding the expanded cron expression;
- `merge(base, override)`, the one merge, for `defaults` -> entry and for central -> repository file.

Invariants: an override never sets what it leaves None; `merge` does not re-validate, so its result is
as valid as its inputs, and the cross-field facts (model priced, template installed, patterns valid,
cron valid) are checked by the callers on the merged value. Title patterns are RE2 expressions
(`title_regex`): matching takes time linear in the title whatever the pattern (a repository's own
patterns are untrusted), and a pattern RE2 cannot run in linear time (a lookaround, a backreference) or
in its memory bound is refused when the file is read. Pure: no I/O.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import re2
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from reviewer.errors import ConfigError
from reviewer.review.trim import parse_ignore

Combine = Literal["replace", "concat", "append", "nested"]
Layer = Literal["central", "repo_file"]  # repositories[] entry over defaults; repository file over that
Severity = Literal["critical", "high", "medium", "low"]
ReviewMode = Literal["incremental", "full"]
CacheTTL = Literal["5m", "1h"]
M = TypeVar("M", bound=BaseModel)
TITLE_REGEX_MEMORY = 1 << 20  # bytes RE2 may use for one compiled title pattern


@dataclass(frozen=True)
class Opt:
    """How an override sets an option in each layer; `repo_file` None: the repository file may not."""

    central: Combine = "replace"
    repo_file: Combine | None = None

    def combine(self, layer: Layer) -> Combine | None:
        return self.central if layer == "central" else self.repo_file


REPO_FILE = Opt(repo_file="replace")  # the repository file may set it too, replacing the central value


def _as_tuple(value: object) -> object:
    """A YAML list becomes a tuple, so that the settings stay frozen and hashable."""
    if isinstance(value, list | tuple):
        return tuple(value)
    raise PydanticCustomError("list_type", "Input should be a valid list")


Strings = Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Skip(Strict):
    """Pull requests that are not reviewed; each skip is recorded with its reason."""

    drafts: Annotated[bool, REPO_FILE] = True  # reviewed once marked ready for review
    bots: Annotated[bool, REPO_FILE] = True
    labels: Annotated[Strings, REPO_FILE] = ()
    title_patterns: Annotated[Strings, REPO_FILE] = ()  # regular expressions, searched case-insensitively
    authors: Annotated[Strings, REPO_FILE] = ()


class RepoOptions(Strict):
    """The per-repository options: the `defaults` section, and all that an entry or the repository file
    may override."""

    model: Annotated[str, REPO_FILE] = "claude-opus-4-7"
    max_tokens: Annotated[int, Field(ge=1, le=300_000)] = 8192
    schedule: str = "nightly"  # nightly, weekly or a 5-field cron expression
    template: Annotated[str, REPO_FILE] = "review"
    instructions: Annotated[str, Opt(repo_file="append")] = ""  # the repository's go after a blank line
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    ignore: Annotated[Strings, Opt("concat", "concat")] = ()  # gitignore syntax, added to the built-in ones
    severity_threshold: Annotated[Severity, REPO_FILE] = "low"
    max_inline_comments: Annotated[int, Field(ge=0, le=100), REPO_FILE] = 30
    review_mode: Annotated[ReviewMode, REPO_FILE] = "incremental"
    skip: Annotated[Skip, Opt("nested", "nested")] = Skip(labels=("no-review", "skip-review"),
                                                          title_patterns=(r"^\s*\[?wip\b",))
    token_budget: Annotated[int, Field(ge=1000)] = 120_000  # diff tokens per request; the rest is left out
    hard_limit_tokens: Annotated[int, Field(ge=1000)] = 1_000_000  # reviewable diff above this: skipped
    read_repo_config: bool = True  # honour .github/reviewer.yml on the default branch
    prompt_caching: bool = False  # cache the shared prefix (tools + system prompt) across a batch
    cache_ttl: CacheTTL = "1h"  # batches can run longer than 5 minutes
    express_label: str = "review-now"  # this label sends a PR through the standard API at once ("" = off)


class Overrides(Strict):
    """An override shape made by `overrides()`; `layer` says which `Opt` rule `merge` follows."""

    layer: ClassVar[Layer] = "central"


class _RepoFileOverrides(Overrides):
    layer: ClassVar[Layer] = "repo_file"


def overrides(options: type[BaseModel], layer: Layer, shape_name: str, /, **extra: Any) -> type[Overrides]:
    """The override shape of `options` for `layer`: the fields that layer may set, each optional with its
    bounds kept; `extra` adds fields that are not options (pydantic `create_model` form)."""
    fields: dict[str, Any] = {key: (_optional(info, layer), None) for key, info in options.model_fields.items()
                              if _opt(info).combine(layer) is not None}
    base: type[Overrides] = _RepoFileOverrides if layer == "repo_file" else Overrides
    return create_model(shape_name, __base__=base, **fields, **extra)


def _optional(info: FieldInfo, layer: Layer) -> Any:
    kind: Any = info.annotation
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        kind = overrides(kind, layer, f"{kind.__name__}Rules")  # SkipRules, as error messages always said
    return (Annotated[(kind, *info.metadata)] if info.metadata else kind) | None


def _opt(info: FieldInfo) -> Opt:
    return next((item for item in info.metadata if isinstance(item, Opt)), Opt())


class RepoEntry(overrides(RepoOptions, "central", "RepoEntry", name=(str, ...),  # type: ignore[misc]
                          monthly_budget_usd=(float | None, Field(default=None, ge=0)))):
    """A `repositories[]` entry: its `name`, any option (unset: from `defaults`), `monthly_budget_usd`."""


class ReviewRules(overrides(RepoOptions, "repo_file", "ReviewRules")):  # type: ignore[misc]
    """What `.github/reviewer.yml` in a repository (read from its default branch) may set."""


class RepoSettings(RepoOptions):
    """One repository's effective settings: the options after both merges (`schedule` is the expanded
    cron expression), its name and its own monthly budget."""

    name: str
    monthly_budget_micro_usd: int | None = None


def merge(base: M, override: Overrides) -> M:
    """`base` with each option that `override` sets combined in as its `Opt` says for the override's
    layer; an override's fields that are not options of `base` (an entry's `name`) are left out."""
    fields = type(base).model_fields
    changes = {key: _combine(_opt(fields[key]).combine(override.layer), getattr(base, key), value)
               for key, value in override if value is not None and key in fields}
    return base.model_copy(update=changes)


def _combine(how: Combine | None, old: Any, new: Any) -> Any:
    if how == "concat":
        return old + new
    if how == "append":
        return f"{old}\n\n{new}".strip() if new else old
    if how == "nested":
        return merge(old, new)
    return new


def check_patterns(source: str, prefix: str, options: RepoOptions) -> None:
    """The ignore patterns parse and the title patterns compile; an error names `prefix` + the key."""
    try:
        parse_ignore(options.ignore)
    except ValueError as exc:
        raise ConfigError(source, f"{prefix}ignore", str(exc)) from None
    for pattern in options.skip.title_patterns:
        try:
            title_regex(pattern)
        except ValueError as exc:
            raise ConfigError(source, f"{prefix}skip.title_patterns", f"{pattern[:100]!r} is not a valid regular "
                              f"expression ({exc}); RE2 syntax: no lookarounds or backreferences") from None


@functools.lru_cache(maxsize=256)
def title_regex(pattern: str) -> Any:
    """A title pattern compiled by RE2, searched case-insensitively (`.search(title)`); ValueError with
    RE2's reason when it does not compile."""
    options = re2.Options()
    options.case_sensitive, options.log_errors, options.max_mem = False, False, TITLE_REGEX_MEMORY
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        raise ValueError(reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)) from None


def validated(shape: type[M], raw: object, source: str) -> M:
    """`raw` as `shape`, or its first problem as one ConfigError line naming the key."""
    try:
        return shape.model_validate(raw)
    except ValidationError as exc:
        raise _error_line(source, exc) from None


def _error_line(source: str, error: ValidationError) -> ConfigError:
    first = error.errors()[0]
    key = ""
    for part in first["loc"]:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    kind = first["type"]
    if kind == "extra_forbidden":
        problem = "unknown key; remove it or fix its spelling (`reviewer config example` shows the keys)"
    elif kind == "missing":
        problem = "required key is missing"
    else:
        problem = f"{first['msg']} (got {first.get('input')!r})"
    return ConfigError(source, key, problem)
