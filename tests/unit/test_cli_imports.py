"""The commands people type to look (`reviewer --help`, `status`, `costs`) start at once: each runs in a
fresh interpreter, on a small SQLite database at head, and must not have loaded the SDKs (anthropic,
PyGithub), APScheduler's scheduler, Jinja2, Alembic or the emulators; `--help` not even SQLAlchemy.
Those cost seconds of start-up (bench/cli_start.py times the commands).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reviewer.db import make_engine
from reviewer.migrate import HEAD_REVISION, head_revision, upgrade

HEAVY = ("anthropic", "github", "apscheduler.schedulers", "apscheduler.executors", "apscheduler.jobstores",
         "jinja2", "alembic", "reviewer.emulators", "reviewer.github", "reviewer.batches", "reviewer.scheduler")
HELP_ALSO = ("sqlalchemy", "apscheduler", "pydantic", "yaml")  # --help builds the command line, nothing more

# Runs the real CLI in this interpreter, then writes the names of every loaded module to argv[1].
PROBE = """
import json, sys
out, sys.argv = sys.argv[1], ["reviewer", *sys.argv[2:]]
for name in filter(None, sys.argv.pop(1).split(",")):
    __import__(name)
from reviewer.cli import main
try:
    main()
finally:
    open(out, "w").write(json.dumps(sorted(sys.modules)))
"""


def loaded_by(tmp_path: Path, args: list[str], preload: str = "") -> tuple[list[str], str]:
    """(the modules loaded, what was printed) by `reviewer ARGS` in a fresh interpreter."""
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVIEWER_", "GITHUB_", "ANTHROPIC_"))}
    done = subprocess.run([sys.executable, "-c", PROBE, str(out), preload, *args], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "the command printed nothing: did it run?"
    return json.loads(out.read_text()), done.stdout


def heavy_among(modules: list[str], heavy: tuple[str, ...]) -> list[str]:
    return sorted({h for h in heavy for m in modules if m == h or m.startswith(f"{h}.")})


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config on a SQLite file already at head (so no command has a reason to load Alembic)."""
    url = f"sqlite:///{tmp_path / 'reviewer.db'}"
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    path = tmp_path / "reviewer.yml"
    path.write_text(yaml.safe_dump({"database_url": url, "repositories": [{"name": "acme/api"},
                                    {"name": "acme/web", "schedule": "weekly"}]}))
    return path


def test_help_loads_no_sdk_and_no_database_library(tmp_path: Path) -> None:
    modules, printed = loaded_by(tmp_path, ["--help"])
    assert "Commands:" in printed
    assert heavy_among(modules, HEAVY + HELP_ALSO) == []


@pytest.mark.parametrize(("command", "expected"), [(["status"], "Jobs by repository and state"),
                                                   (["costs"], "by review"),
                                                   (["costs", "--format", "json"], "[")])
def test_status_and_costs_load_no_sdk_scheduler_template_engine_or_alembic(
        config: Path, tmp_path: Path, command: list[str], expected: str) -> None:
    modules, printed = loaded_by(tmp_path, ["--config", str(config), *command])
    assert expected in printed
    assert heavy_among(modules, HEAVY) == []
    assert "reviewer.cli" in modules and "sqlalchemy" in modules  # the probe really ran the command


def test_the_probe_sees_a_heavy_import(tmp_path: Path) -> None:
    """A module loaded on the way (here: before the CLI) is reported, so an eager import cannot hide."""
    modules, _ = loaded_by(tmp_path, ["--help"], preload="jinja2,reviewer.github")
    assert {"github", "jinja2", "reviewer.github"} <= set(heavy_among(modules, HEAVY))


def test_head_revision_constant_is_alembics_head() -> None:
    """The cheap schema check compares the database with HEAD_REVISION: it must be the migrations' head."""
    head = head_revision()
    assert head == HEAD_REVISION, f"set HEAD_REVISION in reviewer/migrate.py to {head!r}, the newest migration"


# Logging is configured before the SDKs are imported now: building an adapter must apply it to them again.
LATE_SDK_PROBE = """
import json, logging
from pathlib import Path
from reviewer.config import settings_from_mapping
from reviewer.logs import configure_logging
from reviewer.runtime import Runtime
configure_logging("warning", "text")
env = {"GITHUB_TOKEN": "ghp_probe", "ANTHROPIC_API_KEY": "sk-ant-probe"}
rt = Runtime(settings_from_mapping({"database_url": "sqlite://"}, "probe.yml", env, Path(".")))
try:
    rt.github, rt.batches
    loggers = [logging.getLogger(name) for name in ("github", "anthropic")]
    print(json.dumps([[lg.name, logging.getLevelName(lg.level), len(lg.handlers), lg.propagate] for lg in loggers]))
finally:
    rt.close()
"""


def test_sdks_imported_after_logging_was_configured_still_follow_it() -> None:
    """PyGithub sets its logger to INFO with a bare StreamHandler when imported, and the anthropic SDK
    honours ANTHROPIC_LOG: neither may undo `--log-level` (or slip past the redacting handler)."""
    env = {**os.environ, "ANTHROPIC_LOG": "debug"}
    done = subprocess.run([sys.executable, "-c", LATE_SDK_PROBE], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [["github", "WARNING", 0, True], ["anthropic", "WARNING", 0, True]]
