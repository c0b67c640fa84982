"""``hook:`` steps (either side): a Python function the route's translation calls.

``hook: "mypkg.translators:fix_request"`` (or the dotted ``mypkg.translators.fix_request``)
is imported and checked when the config is loaded
(``strangler.config.translate_values.load_hook``): a module that does not import, a
missing name, something not callable, a function that cannot take exactly one
argument, or an ``async`` function is a config problem with file:line, never a 500.

The contract, for the function's author:

- it gets one ``TranslateRequest`` (in ``request:``) or ``TranslateResponse`` (in
  ``response:``) and returns the translated message: the same object changed, or a
  new one of the same class. Returning anything else (``None`` included) fails the
  step;
- it sees the body decoded (no ``Content-Encoding``); ``msg.json`` is the parsed
  document, changed in place or assigned; the plan serialises and encodes it once;
- it runs on the request path, on the event loop: no I/O, no sleeping, be quick;
- an exception fails the step (``on_error`` decides what the client sees: the
  error, or the body untouched). Its message is logged; the client gets one line.
- ``{call: ..., body: false}`` declares a hook that leaves the body alone, so the
  route can stream: it sees ``body`` ``None``.

Hooks are imported once per process: editing a hook's code takes a restart, not a
reload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar, final

from strangler.config.translate_model import HookStep
from strangler.translate.base import TranslateError, TranslateRequest, TranslateResponse

__all__ = ["HookTransform", "build_request", "build_response"]

M = TypeVar("M", TranslateRequest, TranslateResponse)


@final
class HookTransform(Generic[M]):
    """A compiled ``hook:`` step for messages of class ``kind``."""

    __slots__ = ("_function", "_kind", "_status", "needs_body", "step", "target")

    _function: Callable[[M], object]
    _kind: type[M]

    def __init__(self, spec: HookStep, step: str, kind: type[M], status: int) -> None:
        self.step = step
        self.target = spec.call.target
        self.needs_body = spec.body
        self._function = spec.call.function
        self._kind = kind
        self._status = status

    def apply(self, msg: M, /) -> M:
        try:
            out = self._function(msg)
        except Exception as err:
            raise TranslateError(
                self.step,
                f"hook {self.target} failed: {type(err).__name__}: {err}",
                status=self._status,
                recoverable=True,
            ) from err
        if not isinstance(out, self._kind):
            raise TranslateError(
                self.step,
                f"hook {self.target} returned {type(out).__name__}, not the "
                f"{self._kind.__name__} (return the message)",
                status=self._status,
                recoverable=True,
            )
        return out

    def reads_body(self, status: int | None, /) -> bool:
        return self.needs_body

    def next_status(self, status: int | None, /) -> int | None:
        return None  # a hook may set any status


def build_request(spec: HookStep, step: str) -> HookTransform[TranslateRequest]:
    """A request hook; a failure answers 500 (a bug in the hook, not the client's)."""
    return HookTransform(spec, step, TranslateRequest, 500)


def build_response(spec: HookStep, step: str) -> HookTransform[TranslateResponse]:
    """A response hook; a failure answers 502."""
    return HookTransform(spec, step, TranslateResponse, 502)
