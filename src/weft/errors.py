"""One exception hierarchy for Weft; every message says what was wrong, where, and what to do."""

from __future__ import annotations

from dataclasses import dataclass, field


class WeftError(Exception):
    """Base of every error Weft raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with one config object: where it is, what is wrong, how to fix it."""

    message: str
    source: str | None = None  # file path, "<stdin>", "kubernetes", ...
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    field: str | None = None  # dotted path with indexes: spec.http[0].route[1].weight
    hint: str | None = None

    def __str__(self) -> str:
        where: list[str] = []
        if self.source:
            where.append(self.source)
        if self.kind or self.name:
            obj = f"{self.kind or 'object'}"
            if self.name:
                obj += f" {self.namespace or 'default'}/{self.name}"
            where.append(obj)
        if self.field:
            where.append(self.field)
        text = ": ".join([*where, self.message]) if where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


@dataclass
class ConfigError(WeftError):
    """Config that cannot be accepted. Nothing from the same batch (file, apply) is applied."""

    problems: list[ConfigProblem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        return f"{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)


class ProxyError(WeftError):
    """Envoy could not be started, configured or stopped."""


class ControlPlaneUnavailable(WeftError):
    """The control plane could not be reached."""
