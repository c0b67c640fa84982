"""A seeded config mutator: the README's examples and tests/data/configs, bent out of shape.

``cases(n, seed)`` yields ``n`` mutated configs, the same ones for the same seed (a
failure names its case number and reproduces with it). Each mutation is one of a few
text edits a person makes by mistake (a line dropped, repeated, swapped, re-indented,
a key or value replaced, a bracket left open) or a hostile value put where a value
goes (``http://[::1``, ``1e400``, 5,000 nested brackets, a billion laughs...). A case
applies one to four of them.

``check_text(text, file)`` runs what ``strangler check`` runs, minus reading the
file: nothing may raise. ``through_reload(...)`` writes mutated configs under a
running ``ProxyServer`` and reloads each: every one must end applied, unchanged or
rejected, with the admin API answering after each. Used by tests/test_config_fuzz.py
(a few thousand cases) and tests/bench/fuzz_config.py (10,000 and more).
"""

from __future__ import annotations

import collections
import io
import random
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp

from strangler.config import load_config
from strangler.config.check import check_sources
from strangler.config.source import read_text
from strangler.metrics import Metrics
from strangler.server import ProxyServer, ServeOptions

ROOT: Final = Path(__file__).resolve().parent.parent
DATA: Final = ROOT / "tests" / "data" / "configs"

HOSTILE: Final = (
    '"http://[::1"',
    '"redis://[::1"',
    '"http://[::1]:99999"',
    '"http://user:hunter2@127.0.0.1:1"',
    "1e400",
    "-1e400",
    "1" + "0" * 400,
    "1" + "0" * 5000,
    "99999999999999999999",
    "-9223372036854775809",
    ".inf",
    "-.inf",
    ".nan",
    "0",
    "-1",
    "1e-400",
    "0x7fffffffffffffffff",
    '"1e400s"',
    '"99999999999999999999h"',
    '"-5%"',
    '"1e400%"',
    '"nan%"',
    '"999999999999GiB"',
    "[" * 100 + "]" * 100,  # 5,000 deep: in test_config_source.py (PyYAML scans it slowly)
    "{a: " * 80 + "1" + "}" * 80,
    "[]",
    "{}",
    "~",
    "''",
    '"\\0"',
    '"\\udcff"',
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!foo bar",
    "*nowhere",
    "&x [*x]",
    "true",
    '"/{a}/{a}"',
    '"/{x:path}/y"',
    '"*.*"',
    '"0.0.0.0:0"',
    '"[::1]:0"',
    '"[::1:0"',
    '"300.1.1.1/40"',
    '"(?P<"',
    '"$..[?("',
    '"$.a[99999999999999999999]"',
    '"header:"',
    '"cookie:"',
    '"' + "a" * 10_000 + '"',
    '"\\t"',
)
"""Values that once broke, or could break, something under ``strangler check``."""

_KEY_LINE: Final = re.compile(r"^(\s*(?:- )?)([A-Za-z_][\w.-]*)(:\s*)(.*)$")


@dataclass(frozen=True, slots=True)
class Seed:
    """One starting config: its text and the file name it is checked under (so its
    ``include`` globs find the files beside it)."""

    name: str
    text: str
    file: str


def seeds(data: Path = DATA) -> list[Seed]:
    """Every config of tests/data/configs, the README's YAML examples and the demo's."""
    found: list[Seed] = []
    for path in sorted(data.rglob("*.yaml")):
        found.append(Seed(str(path.relative_to(ROOT)), path.read_text("utf-8"), str(path)))
    readme = (ROOT / "README.md").read_text("utf-8")
    for n, block in enumerate(re.findall(r"```ya?ml\n(.*?)```", readme, re.DOTALL)):
        found.append(Seed(f"README.md#{n}", block, str(data / "valid" / "readme.yaml")))
    for path in sorted((ROOT / "strangler" / "demo").rglob("*.yaml")):
        found.append(Seed(str(path.relative_to(ROOT)), path.read_text("utf-8"), str(path)))
    return found


def vocabulary(all_seeds: list[Seed]) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """The keys and the values the seeds use, to swap between places, and each key's
    values (a value another seed gives the same key is often valid there too)."""
    by_key: dict[str, set[str]] = collections.defaultdict(set)
    for seed in all_seeds:
        for line in seed.text.splitlines():
            m = _KEY_LINE.match(line)
            if m:
                given = by_key[m.group(2)]  # a key is known even with no value
                if m.group(4) and len(m.group(4)) < 200:
                    given.add(m.group(4))
    values = {v for vs in by_key.values() for v in vs}
    return sorted(by_key), sorted(values), {k: sorted(v) for k, v in by_key.items() if v}


class Mutator:
    """Seeded text mutations of a config."""

    def __init__(
        self,
        rng: random.Random,
        keys: list[str],
        values: list[str],
        by_key: dict[str, list[str]] | None = None,
    ) -> None:
        self.rng = rng
        self.keys = keys
        self.values = values
        self.by_key = by_key or {}

    def mutate(self, text: str) -> str:
        for _ in range(self.rng.randint(1, 4)):
            text = self.rng.choice(self._edits)(self, text)
        return text

    def _lines(self, text: str) -> list[str]:
        return text.splitlines() or [""]

    def _value(self) -> str:
        if self.rng.random() < 0.6:
            return self.rng.choice(HOSTILE)
        return self.rng.choice(self.values) if self.values else "x"

    def _edit_key_line(self, text: str, edit: Callable[[re.Match[str]], str]) -> str:
        """``edit`` one random ``key: value`` line (its match) into a new line."""
        lines = self._lines(text)
        spots = [(i, m) for i, line in enumerate(lines) if (m := _KEY_LINE.match(line))]
        if not spots:
            return text
        i, m = self.rng.choice(spots)
        lines[i] = edit(m)
        return "\n".join(lines) + "\n"

    def replace_value(self, text: str) -> str:
        return self._edit_key_line(
            text, lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ': '}{self._value()}"
        )

    def replace_key(self, text: str) -> str:
        key = self.rng.choice(self.keys) if self.keys else "x"
        return self._edit_key_line(text, lambda m: f"{m.group(1)}{key}{m.group(3)}{m.group(4)}")

    def other_value(self, text: str) -> str:
        """A key's value replaced by one another seed gives that key (``percent: 10%``
        to ``percent: 25%``): a mild edit, often still a valid config."""

        def edit(m: re.Match[str]) -> str:
            value = self.rng.choice(self.by_key.get(m.group(2)) or [m.group(4)])
            return f"{m.group(1)}{m.group(2)}{m.group(3)}{value}"

        return self._edit_key_line(text, edit)

    def drop_line(self, text: str) -> str:
        lines = self._lines(text)
        del lines[self.rng.randrange(len(lines))]
        return "\n".join(lines) + "\n"

    def repeat_line(self, text: str) -> str:
        lines = self._lines(text)
        i = self.rng.randrange(len(lines))
        lines.insert(i, lines[i])
        return "\n".join(lines) + "\n"

    def swap_lines(self, text: str) -> str:
        lines = self._lines(text)
        i, j = self.rng.randrange(len(lines)), self.rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines) + "\n"

    def reindent(self, text: str) -> str:
        lines = self._lines(text)
        i = self.rng.randrange(len(lines))
        lines[i] = " " * self.rng.choice((0, 1, 2, 4, 6)) + lines[i].lstrip()
        return "\n".join(lines) + "\n"

    def insert_token(self, text: str) -> str:
        token = self.rng.choice(("[", "]", "{", "}", ":", "- ", "&a ", "*a", "<<: ", "'", '"'))
        at = self.rng.randrange(len(text) + 1)
        return text[:at] + token + text[at:]

    def insert_entry(self, text: str) -> str:
        lines = self._lines(text)
        i = self.rng.randrange(len(lines) + 1)
        indent = " " * self.rng.choice((0, 2, 4, 6))
        lines.insert(i, f"{indent}{self.rng.choice(self.keys or ['x'])}: {self._value()}")
        return "\n".join(lines) + "\n"

    _edits = (
        replace_value,
        replace_value,
        replace_value,
        replace_key,
        drop_line,
        repeat_line,
        swap_lines,
        reindent,
        insert_token,
        insert_entry,
        insert_entry,
    )


@dataclass(frozen=True, slots=True)
class Case:
    number: int
    seed: str
    file: str
    text: str


def cases(n: int, seed: int = 0, *, mild: float = 0.0) -> Iterator[Case]:
    """``n`` mutated configs, reproducibly for one ``seed``. ``mild``: the share of
    cases that start from a seed ``strangler check`` accepts and only take other
    values of the seeds' for one or two keys, so that a good part of them are valid
    (what a reload test needs: configs applied between the rejected ones)."""
    all_seeds = seeds()
    keys, values, by_key = vocabulary(all_seeds)
    rng = random.Random(seed)
    mutator = Mutator(rng, keys, values, by_key)
    valid = [s for s in all_seeds if mild and check_text(s.text, s.file)]
    for number in range(n):
        if mild and rng.random() < mild:
            start = rng.choice(valid)
            text = start.text
            for _ in range(rng.randint(1, 2)):
                text = mutator.other_value(text)
            text += f"\n# case {number}\n"  # never the config already loaded
        else:
            start = rng.choice(all_seeds)
            text = mutator.mutate(start.text)
        yield Case(number, start.name, start.file, text)


def check_text(text: str, file: str) -> bool:
    """What ``strangler check`` does for ``text`` as ``file``; True when it is ok.

    Any exception is the bug this exists to find (``check_sources`` reports every
    problem in the config as a ``Problem``, never by raising)."""
    return check_sources(read_text(text, file), file).ok


GOOD: Final = """
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {legacy}
routes:
  - {{name: things, owner: t, match: {{path_prefix: /things}}, to: legacy}}
"""
"""The config the live server starts with and ends with (``legacy`` filled in)."""


@dataclass
class ReloadRun:
    """What ``through_reload`` saw."""

    results: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)
    rejected_metric: float | None = None
    final_status: int = 0  # the proxy's answer to /things/1 after the good config is back
    final_served_by: str | None = None


async def through_reload(work: Path, legacy_url: str, n: int, seed: int) -> ReloadRun:
    """``n`` mutated configs through ``ProxyServer.reload()`` of a running server, in
    ``work`` (a copy of tests/data/configs, so includes resolve); then the good one.
    A third of them are mild (``cases``): valid configs get applied between the rest."""
    tree = work / "configs"
    shutil.copytree(DATA, tree)
    path = tree / "valid" / "live.yaml"
    path.write_text(GOOD.format(legacy=legacy_url))
    server = ProxyServer(
        load_config(path),
        ServeOptions(config_path=path, watch_interval=0, state_dir=work / "state"),
        metrics=Metrics(),
        access_stream=io.StringIO(),
    )
    await server.start()
    run = ReloadRun()
    try:
        async with aiohttp.ClientSession() as session:
            for case in cases(n, seed, mild=0.33):
                path.write_text(case.text)
                try:
                    result, message = await server.reload()
                except Exception as err:
                    run.failures.append(f"case {case.number} ({case.seed}): raised {err!r}")
                    continue
                run.results[result] += 1
                if result not in ("applied", "unchanged", "rejected"):
                    run.failures.append(f"case {case.number}: {result}: {message}")
                admin = f"http://127.0.0.1:{server.admin_port}/healthz"
                async with session.get(admin) as r:
                    if r.status != 200:
                        run.failures.append(f"case {case.number}: /healthz answered {r.status}")
            path.write_text(GOOD.format(legacy=legacy_url))
            result, message = await server.reload()
            # applied again, unless no case was (the corpus decides: the server never left it)
            expected = "applied" if run.results["applied"] else "unchanged"
            if result != expected:
                run.failures.append(f"the good config back: {result}: {message}")
            async with session.get(f"http://127.0.0.1:{server.proxy_port}/things/1") as r:
                run.final_status = r.status
                run.final_served_by = r.headers.get("X-Served-By")
    finally:
        await server.stop()
    run.rejected_metric = server.metrics.registry.get_sample_value(
        "strangler_config_reloads_total", {"result": "rejected"}
    )
    return run
