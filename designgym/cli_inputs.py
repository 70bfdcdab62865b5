"""Reading the ``designgym`` command's inputs, and saying in one line what is wrong with them.

Every error of the command is one line on stderr that names the problem and the way out: argparse's
own (an unknown flag, a value of the wrong type), the checks of the values here (seeds, counts,
seconds, ``key=value`` YAML, JSON), and the errors the work raises later (:func:`one_line` folds a
library's many-line message; :func:`file_problem` adds the fix to the system's own words).
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import yaml


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (which option, what is wrong, where the help is), like
    every other error of the command; ``--help`` still prints the usage."""

    def error(self, message: str) -> NoReturn:
        found = re.match(r"argument (\S+?)(?:/\S+)?: (.*)", message)
        if found and found.group(2).startswith(("must ", "is ")):  # our own checks: "--seed must be ..."
            message = f"{found.group(1)} {found.group(2)}"
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``low`` (and below ``high``, when given)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if high is not None and not low <= value < high:
            raise argparse.ArgumentTypeError(f"must be a whole number in [{low}, {high}), got {value}")
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


#: A seed: NumPy and torch take no negative one, and episodes count up from it.
seed_number = whole_number(0, 2**31)


def seconds(text: str) -> float:
    """An argparse type: a finite, positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds above 0, got {text!r}")
    return value


def parse_value(text: str, what: str) -> Any:
    """``key=value`` values are read as YAML, so numbers, lists and dicts come out typed."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ValueError(f"{what}: {text!r} is not a valid YAML value ({problem}); quote it, or close its "
                         "brackets") from None


def key_values(pairs: list[str], flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} takes key=value pairs, got {pair!r}")
        out[key] = parse_value(value, f"{flag} {key}")
    return out


def json_argument(text: str, what: str) -> Any:
    """A JSON literal, or the path of a JSON file."""
    path = Path(text)
    if not text.lstrip().startswith(("{", "[")) and path.exists():
        text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} must be JSON or a JSON file: {exc}") from None


def conditions_list(text: str | None) -> list[dict[str, Any]] | None:
    if text is None:
        return None
    data = json_argument(text, "--conditions")
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(c, dict) for c in data):
        raise ValueError("--conditions must be a JSON object or a list of them (or a file holding one)")
    return data


def one_line(message: object, limit: int = 600) -> str:
    """A message on one line: a library's error can span many (torch prints whole tensors)."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    text = " ".join(lines)
    return text if len(text) <= limit else f"{text[:limit]}... (`designgym --debug ...` shows all of it)"


FILE_FIXES = {
    errno.EACCES: "choose a place you may write to (--out), or change its permissions",
    errno.EPERM: "choose a place you may write to (--out), or change its permissions",
    errno.EROFS: "the file system is read-only; choose another place (--out)",
    errno.ENOSPC: "the disk is full; free some space, or choose another place (--out)",
    errno.EEXIST: "a file is in the way of a folder; move it, or choose another place (--out)",
    errno.ENOTDIR: "a file is in the way of a folder on that path; move it, or choose another place (--out)",
    errno.EISDIR: "that is a folder; give a file",
    errno.ENOENT: "check the path",
}


def file_problem(exc: OSError) -> str:
    """An ``OSError`` from the system (not one of designgym's own messages) with the path and the fix."""
    where = exc.filename if exc.filename is not None else "a file"
    fix = FILE_FIXES.get(exc.errno or 0, "check the path and the disk")
    return f"{where}: {exc.strerror or exc}; {fix}"
