"""The emulators in processes of their own, for benchmarks that measure the service alone (its CPU, its
peak memory) while the emulators parse every body they are sent.

    with EmulatorProcess("github", token="ghp_bench") as github, \\
            EmulatorProcess("anthropic", api_key="sk-ant-bench", polls_to_end=1) as anthropic:
        github.seed("bench.pipeline_5000:seed", repos=50, prs=5000)   # runs in the emulator's process
        ...  # point the service at github.url and anthropic.url
        github.requests()   # [(method, path, status), ...] as the emulator recorded them
        github.usage()      # {"max_rss_mib": ..., "cpu_seconds": ...} of the emulator's process

The child runs the real emulator class (reviewer.emulators) and reads one JSON command per line on stdin,
answering one JSON line on stdout: `seed` (call `module:function(emulator, **kwargs)` in the child, so a
large workload is generated where it is served), `call` (a method of the emulator, e.g. `end_all`),
`requests`, `clear`, `usage`, `stop`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class EmulatorProcess:
    def __init__(self, kind: str, **options: Any) -> None:
        if kind not in ("github", "anthropic"):
            raise ValueError(f"unknown emulator {kind!r}")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self._child = subprocess.Popen(
            [sys.executable, "-m", "bench._emulators", kind, json.dumps(options)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.url: str = self._answer()["url"]
        self.pid = self._child.pid

    def _answer(self) -> Any:
        assert self._child.stdout is not None
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator process exited ({self._child.wait()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"emulator: {answer['error']}")
        return answer.get("value", answer)

    def _send(self, op: str, **fields: Any) -> Any:
        assert self._child.stdin is not None
        self._child.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self._child.stdin.flush()
        return self._answer()

    def seed(self, target: str, **kwargs: Any) -> Any:
        return self._send("seed", target=target, kwargs=kwargs)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._send("call", method=method, args=list(args), kwargs=kwargs)

    def requests(self) -> list[tuple[str, str, int]]:
        return [tuple(r) for r in self._send("requests")]

    def clear(self) -> None:
        self._send("clear")

    def usage(self) -> dict[str, float]:
        return dict(self._send("usage"))

    def stop(self) -> None:
        if self._child.poll() is None:
            with contextlib.suppress(RuntimeError, BrokenPipeError):
                self._send("stop")
            self._child.wait(timeout=30)
        for stream in (self._child.stdin, self._child.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _serve(kind: str, options: dict[str, Any]) -> None:
    if kind == "github":
        from reviewer.emulators.github import GitHubEmulator
        emulator: Any = GitHubEmulator(**options)
    else:
        from reviewer.emulators.anthropic import AnthropicEmulator
        emulator = AnthropicEmulator(**options)
    emulator.start()
    out = sys.stdout
    out.write(json.dumps({"url": emulator.url}) + "\n")
    out.flush()
    for line in sys.stdin:
        command = json.loads(line)
        try:
            value = _run(emulator, command)
        except Exception as exc:  # the bench shows it; the emulator goes on serving
            out.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        else:
            out.write(json.dumps({"value": value}, default=str) + "\n")
        out.flush()
        if command["op"] == "stop":
            break
    emulator.stop()


def _run(emulator: Any, command: dict[str, Any]) -> Any:
    op = command["op"]
    if op == "seed":
        module, _, function = command["target"].partition(":")
        return getattr(importlib.import_module(module), function)(emulator, **command["kwargs"])
    if op == "call":
        return getattr(emulator, command["method"])(*command["args"], **command["kwargs"])
    if op == "requests":
        return [(r.method, r.path, r.status) for r in emulator.server.requests]
    if op == "clear":
        emulator.server.requests.clear()
        return None
    if op == "usage":
        own = resource.getrusage(resource.RUSAGE_SELF)
        return {"max_rss_mib": own.ru_maxrss / 1024, "cpu_seconds": own.ru_utime + own.ru_stime}
    if op == "stop":
        return None
    raise ValueError(f"unknown op {op!r}")


if __name__ == "__main__":
    _serve(sys.argv[1], json.loads(sys.argv[2]))
