"""Run the commands of a markdown document against real processes, and check their output.

The document's code blocks are read in order:

- a ```` ```console ```` block holds commands (lines starting with ``# ``, a root prompt)
  each followed by the output it printed;
- a ```` ```sh ```` block holds commands only (no output to check); a ``strangler serve``
  line in it runs in the background until the end of the block, once its port answers;
- a block right after ``<!-- file: PATH -->`` is written to PATH (a config the reader is
  asked to write);
- ``<!-- not run: REASON -->`` before a block skips it; the reason is the record;
- ``<!-- output: loose -->`` before a console block compares its numbers loosely (request
  counts and shares that depend on everything else the machine did).

Paths and ports are replaced (``Substitutions``) so the commands run as an ordinary user
in a temporary directory against processes on free ports. Commands run one after the
other in one ``bash`` (variables, ``export``, ``cd`` and background jobs carry over, as
in the reader's terminal); each must exit 0.

An expected output matches when its lines, normalized (``normalize``: timestamps, pids,
config versions, epoch seconds, the ``Server`` and ``Date`` headers), appear in the
command's output in order; other lines may come between (a background proxy's log).
Output that arrives late (a background process's log, a reload seen by ``tail``) is
waited for, up to ``WAIT`` seconds; a read-only command (``RETRY``) is run again until
its output matches, for the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

WAIT: Final = 10.0  # seconds a command's output may take to arrive or to become right
PROMPT: Final = "# "
MARK: Final = "@@docs-runner-rc="
RETRY: Final = re.compile(
    r"^(tail |cat |wc -l |strangler (routes|status|backlog)\b|curl -s http://127\.0\.0\.1:\d+/(readyz|healthz|metrics|api/))"
)
_DIRECTIVE: Final = re.compile(r"^\s*<!--\s*(file|not run|output):\s*(.*?)\s*-->\s*$")
_FENCE: Final = re.compile(r"^(\s*)```(\w*)\s*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    text: str
    expected: tuple[str, ...]  # the output shown under it (console blocks)
    line: int  # 1-based line of the command in the document


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    lang: str
    line: int  # the opening fence's line
    body: str
    file: str | None = None  # <!-- file: PATH -->
    not_run: str | None = None  # <!-- not run: REASON -->
    loose: bool = False  # <!-- output: loose -->

    def commands(self) -> Iterator[Command]:
        """The block's commands; in a console block each with the output under it."""
        lines = self.body.split("\n")
        if self.lang == "sh":
            for i, text in enumerate(lines):
                if text.strip() and not text.lstrip().startswith("#"):
                    yield Command(text=text.strip(), expected=(), line=self.line + 1 + i)
            return
        current: tuple[str, int] | None = None
        output: list[str] = []
        for i, text in enumerate(lines):
            if text.startswith(PROMPT):
                if current is not None:
                    yield Command(text=current[0], expected=tuple(output), line=current[1])
                current, output = (text[len(PROMPT) :], self.line + 1 + i), []
            elif current is not None:
                output.append(text)
        if current is not None:
            yield Command(text=current[0], expected=tuple(output), line=current[1])


def blocks(markdown: str) -> list[Block]:
    """Every fenced block, with the directives in the HTML comments right before it."""
    found: list[Block] = []
    pending: dict[str, str] = {}
    lines = markdown.split("\n")
    i = 0
    while i < len(lines):
        d = _DIRECTIVE.match(lines[i])
        if d:
            pending[d.group(1)] = d.group(2)
            i += 1
            continue
        f = _FENCE.match(lines[i])
        if not f:
            if lines[i].strip():
                pending = {}  # a directive applies to the block right after it
            i += 1
            continue
        indent, lang, start = f.group(1), f.group(2), i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line)
            i += 1
        found.append(
            Block(
                lang=lang,
                line=start + 1,
                body="\n".join(body),
                file=pending.get("file"),
                not_run=pending.get("not run"),
                loose=pending.get("output") == "loose",
            )
        )
        pending = {}
        i += 1
    return found


_NORMALIZE: Final = (
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d([,.]\d+)?Z?"), "<time>"),
    (re.compile(r"^Date: .*$"), "Date: <date>"),
    (re.compile(r"^Server: .*$"), "Server: <server>"),
    (re.compile(r"strangler\[\d+\]"), "strangler[<pid>]"),
    (re.compile(r'"pid": \d+'), '"pid": <pid>'),
    (re.compile(r"\b1\d{9}\.\d+"), "<epoch>"),
    (re.compile(r"\b[0-9a-f]{12}\b"), "<version>"),
    (re.compile(r'"duration_ms": [\d.]+'), '"duration_ms": <ms>'),
)
_LOOSE: Final = (
    (re.compile(r"[█░]+"), "<bar>"),
    (re.compile(r"\d+(\.\d+)?"), "<n>"),
    (re.compile(r" +"), " "),
)


def normalize(line: str, *, loose: bool = False) -> str:
    """One output line with what differs from run to run replaced by a placeholder.

    >>> normalize("2026-11-25 13:45:36,906 INFO strangler[22391]: config version ad9164983d19")
    '<time> INFO strangler[<pid>]: config version <version>'
    >>> normalize("    181 X-Served-By: legacy", loose=True)
    ' <n> X-Served-By: legacy'
    """
    line = line.rstrip()
    for pattern, placeholder in _NORMALIZE:
        line = pattern.sub(placeholder, line)
    if loose:
        for pattern, placeholder in _LOOSE:
            line = pattern.sub(placeholder, line)
    return line


def _json_object(line: str) -> dict[str, object] | None:
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def same_line(expected: str, actual: str, *, loose: bool) -> bool:
    """One expected line against one printed line. A one-line JSON object matches an
    object with at least its keys and, normalized, their values (a field added to an
    answer later does not break the guide)."""
    want, got = _json_object(expected), _json_object(actual)
    if want is not None and got is not None:
        return all(
            k in got
            and normalize(json.dumps({k: v}), loose=loose)
            == normalize(json.dumps({k: got[k]}), loose=loose)
            for k, v in want.items()
        )
    return normalize(expected, loose=loose) == normalize(actual, loose=loose)


def matches(expected: tuple[str, ...], actual: list[str], *, loose: bool) -> bool:
    """Whether the expected lines appear in ``actual`` in order, other lines between."""
    got = iter(actual)
    want = [e for e in expected if e.strip() not in ("", "...")]
    return all(any(same_line(w, g, loose=loose) for g in got) for w in want)


@dataclass(slots=True, kw_only=True)
class Substitutions:
    """Text replaced in commands, files and expected output, longest first."""

    pairs: dict[str, str] = field(default_factory=dict)
    pids: dict[str, str] = field(default_factory=dict)  # the document's pid -> this run's

    def apply(self, text: str) -> str:
        for old in sorted(self.pairs, key=len, reverse=True):
            text = text.replace(old, self.pairs[old])
        for old, new in self.pids.items():
            text = re.sub(rf"\b{old}\b", new, text)
        return text

    def learn_pids(self, expected: tuple[str, ...], actual: list[str]) -> None:
        """Pair the document's pids with this run's, from log lines that match."""
        doc = [m.group(1) for e in expected for m in [re.search(r"strangler\[(\d+)\]", e)] if m]
        run = [m.group(1) for a in actual for m in [re.search(r"strangler\[(\d+)\]", a)] if m]
        if doc and run:
            self.pids.setdefault(doc[0], run[0])


class Shell:
    """One bash, fed one command at a time; its output (stdout and stderr) as lines."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "bash",
            "--noprofile",
            "--norc",
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group: background jobs end with it
        )

    async def _line(self, deadline: float) -> str | None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline if deadline > loop.time() else loop.time()):
                raw = await self.proc.stdout.readline()
        except TimeoutError:
            return None
        if not raw:
            raise RuntimeError("bash exited")
        return raw.decode("utf-8", "replace").rstrip("\n")

    async def run(self, command: str, limit: float = 120.0) -> tuple[int, list[str]]:
        """Run ``command``; its exit status and the lines it printed."""
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\nprintf '\\n{MARK}%s\\n' $?\n".encode())
        await self.proc.stdin.drain()
        out: list[str] = []
        deadline = asyncio.get_running_loop().time() + limit
        while True:
            line = await self._line(deadline)
            if line is None:
                raise TimeoutError(f"no end after {limit}s: {command}\n" + "\n".join(out))
            if line.startswith(MARK):
                if out and out[-1] == "":
                    out.pop()  # the newline printed before the mark
                return int(line[len(MARK) :]), out
            out.append(line)

    async def more(self, seconds: float) -> list[str]:
        """A line printed after the last command ended (by a background job), if one
        comes within ``seconds``; lines not read here go to the next command."""
        line = await self._line(asyncio.get_running_loop().time() + seconds)
        return [] if line is None else [line]

    async def stop(self) -> None:
        if self.proc is None:
            return
        try:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # bash and every job it started
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self.proc.wait()
                    return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
        finally:
            # A process that left the group (or still drains) may hold the pipes open:
            # close this end of them, so the loop closes cleanly whatever it does.
            self.proc._transport.close()  # type: ignore[attr-defined]


class Mismatch(AssertionError):
    pass


def write_file(block: Block, subs: Substitutions, cwd: Path) -> None:
    """Write a ``<!-- file: PATH -->`` block where the reader is asked to."""
    assert block.file is not None
    target = Path(subs.apply(block.file))
    if not target.is_absolute():
        target = cwd / target
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(subs.apply(block.body) + "\n", encoding="utf-8")


async def run_command(shell: Shell, cmd: Command, subs: Substitutions, *, loose: bool) -> None:
    """Run one documented command; raise ``Mismatch`` when it fails or prints otherwise."""
    text = subs.apply(cmd.text)
    expected = tuple(subs.apply(e) for e in cmd.expected)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        rc, out = await shell.run(text)
        # Late output (a background process's log) belongs to this command while awaited.
        while not matches(expected, out, loose=loose) and loop.time() < deadline:
            late = await shell.more(min(0.5, deadline - loop.time()))
            if not late and RETRY.match(cmd.text):
                break
            out += late
        ok = rc == 0 and matches(expected, out, loose=loose)
        if ok or not RETRY.match(cmd.text) or loop.time() >= deadline:
            break
    if not ok and os.environ.get("DOCS_RUNNER_RECORD"):  # to rewrite the document's output
        print(f"--- line {cmd.line} (exit {rc}): {cmd.text}\n" + "\n".join(out), flush=True)
        return
    if not ok:
        raise Mismatch(
            f"line {cmd.line}: {cmd.text}\n  ran as: {text}\n  exit status {rc}\n"
            "--- expected (normalized) ---\n"
            + "\n".join(normalize(e, loose=loose) for e in expected)
            + "\n--- printed (normalized) ---\n"
            + "\n".join(normalize(o, loose=loose) for o in out)
        )
    subs.learn_pids(cmd.expected, out)
    if os.environ.get("DOCS_RUNNER_RECORD"):
        print(f"{loop.time() - deadline + WAIT:6.2f}s line {cmd.line}", flush=True)
