"""Check regular expressions against what Envoy accepts.

Envoy matches with RE2, which guarantees linear time by leaving out backtracking features.
Python's `re` has them, so a pattern Python compiles may still be rejected by Envoy and take
the whole listener down with it; we refuse such patterns at the edge instead.
"""

from __future__ import annotations

import re
import warnings

RE2_HINT = (
    "Envoy uses RE2 syntax: no backreferences, lookahead/lookbehind, atomic groups or "
    "possessive quantifiers"
)

_UNSUPPORTED_GROUPS: tuple[tuple[str, str], ...] = (
    ("(?<=", "a lookbehind"),
    ("(?<!", "a negative lookbehind"),
    ("(?=", "a lookahead"),
    ("(?!", "a negative lookahead"),
    ("(?>", "an atomic group"),
    ("(?P=", "a named backreference"),
    ("(?(", "a conditional group"),
    ("(?#", "a comment group"),
)

# RE2 syntax that Python's `re` lacks; replaced by a stand-in before compiling with `re`.
_UNICODE_CLASS = re.compile(r"\\[pP](\{[^}]*\}|[A-Za-z])")
_QUOTED = re.compile(r"\\Q(.*?)(\\E|$)", re.DOTALL)


def re2_error(pattern: str) -> str | None:
    """Why Envoy would reject `pattern`, or None when it is a valid RE2 expression."""
    unsupported = _unsupported_construct(pattern)
    if unsupported is not None:
        return f"regex '{pattern}' uses {unsupported}, which RE2 does not support"
    portable = _QUOTED.sub(lambda m: re.escape(m.group(1)), pattern)
    portable = _UNICODE_CLASS.sub("a", portable)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. FutureWarning for "[[:alpha:]]"
            re.compile(portable)
    except re.error as exc:
        return f"regex '{pattern}' is invalid: {exc}"
    return None


def _unsupported_construct(pattern: str) -> str | None:
    in_class = False
    after_quantifier = False
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1] if i + 1 < n else ""
            if nxt == "Q":
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
                after_quantifier = False
                continue
            if not in_class and nxt in "123456789":
                return f"a backreference (\\{nxt})"
            if not in_class and nxt == "Z":
                return "\\Z (use \\z or $)"
            i += 2
            after_quantifier = False
            continue
        if in_class:
            if c == "]":
                in_class = False
            i += 1
            continue
        if c == "[":
            in_class = True
            # A ']' right after '[' or '[^' is a literal member, not the end of the class.
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":
                i += 1
            after_quantifier = False
            continue
        if c == "(":
            for prefix, name in _UNSUPPORTED_GROUPS:
                if pattern.startswith(prefix, i):
                    return f"{name} {prefix}...)"
            # '(?' starts a group flag, not a quantifier.
            i += 2 if pattern.startswith("(?", i) else 1
            after_quantifier = False
            continue
        if c == "+" and after_quantifier:
            return "a possessive quantifier (e.g. a++)"
        if c in "*+?":
            # '?' after a quantifier makes it lazy, which RE2 supports; '+' would be possessive.
            after_quantifier = c != "?" or not after_quantifier
            i += 1
            continue
        if c == "{":
            close = pattern.find("}", i)
            if close > 0 and re.fullmatch(r"\{\d*(,\d*)?\}", pattern[i : close + 1]):
                i = close + 1
                after_quantifier = True
                continue
        after_quantifier = False
        i += 1
    return None
