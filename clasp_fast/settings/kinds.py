"""What values a setting accepts: the kinds used by the settings table.

Each kind turns a value from a YAML file (``accept``) or a string from a flag or an
environment variable (``from_text``) into the Python value the code uses, or raises
``Invalid`` saying what is wrong.  ``allowed()`` describes, for error messages and the
docs, what the kind accepts; it is written from the same bounds the check uses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from ..netaddr import parse_networks


class Invalid(Exception):
    """A value the kind does not accept; the message says why (e.g. "is not an integer")."""


@dataclass(frozen=True)
class Number:
    """A real number (seconds, milliseconds): at least ``min``, greater than ``above``, at
    most ``max``; ``zero`` says what 0 means when it is special ("unlimited", "never")."""
    min: Optional[float] = None
    max: Optional[float] = None
    unit: str = ""
    zero: str = ""
    above: Optional[float] = None
    metavar = "X"
    pytype: ClassVar[type] = float
    noun = "a number"

    def allowed(self) -> str:
        if self.above is not None:
            text = f"{self.noun} greater than {self.above:g}"
        elif self.min is not None and self.max is not None:
            text = f"{self.noun} from {self.min:g} to {self.max:g}"
        elif self.min is not None:
            text = f"{self.noun} of at least {self.min:g}"
        else:
            text = self.noun
        notes = [n for n in (self.unit, f"0 = {self.zero}" if self.zero else "") if n]
        return text + (f" ({'; '.join(notes)})" if notes else "")

    def accept(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (self.pytype is int and not isinstance(value, int)):
            raise Invalid(f"is not {self.noun}")
        value = self.pytype(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise Invalid("is not a finite number")
        if (self.above is not None and value <= self.above) or \
                (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise Invalid("is out of range")
        return value

    def from_text(self, text: str) -> Any:
        try:
            value = self.pytype(text.strip().replace("_", ""))
        except ValueError:
            raise Invalid(f"is not {self.noun}") from None
        return self.accept(value)


@dataclass(frozen=True)
class Integer(Number):
    """A whole number (ports, counts, bytes)."""
    metavar = "N"
    pytype: ClassVar[type] = int
    noun = "an integer"


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


@dataclass(frozen=True)
class Boolean:
    metavar = "BOOL"
    pytype = bool

    def allowed(self) -> str:
        return "true or false"

    def accept(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid("is not true or false")
        return value

    def from_text(self, text: str) -> bool:
        word = text.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise Invalid("is not true or false")


@dataclass(frozen=True)
class Text:
    """A non-empty string; ``what`` names it in messages ("an address", "a file path")."""
    what: str = "a non-empty string"
    metavar: str = "TEXT"
    pytype = str

    def allowed(self) -> str:
        return self.what

    def accept(self, value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid("is not a string (quote it in YAML)")
        if not value.strip():
            raise Invalid("is empty")
        return value

    def from_text(self, text: str) -> str:
        return self.accept(text)


@dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]
    metavar = "WORD"
    pytype = str

    def allowed(self) -> str:
        return "one of " + ", ".join(self.options)

    def accept(self, value: Any) -> str:
        if not isinstance(value, str) or value.strip().lower() not in self.options:
            raise Invalid("is not one of the choices")
        return value.strip().lower()

    def from_text(self, text: str) -> str:
        return self.accept(text)


@dataclass(frozen=True)
class Nullable:
    """``inner`` or nothing: YAML ``null``, or an empty string from a flag or variable."""
    inner: Any
    pytype = Optional[str]

    @property
    def metavar(self) -> str:
        return self.inner.metavar

    def allowed(self) -> str:
        return f"{self.inner.allowed()} or null"

    def accept(self, value: Any) -> Any:
        return None if value is None else self.inner.accept(value)

    def from_text(self, text: str) -> Any:
        return None if not text.strip() or text.strip() == "null" else self.inner.from_text(text)


@dataclass(frozen=True)
class IpNetwork:
    """An IP address or a CIDR network, e.g. ``10.0.0.0/8``; kept as the text given."""
    metavar = "CIDR"
    pytype = str

    def allowed(self) -> str:
        return "an IP address or CIDR network"

    def accept(self, value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid("is not a string (quote it in YAML)")
        try:
            parse_networks([value])
        except ValueError:
            raise Invalid(f"has {value!r}, which is not an IP address or network") from None
        return value.strip()

    def from_text(self, text: str) -> str:
        return self.accept(text)


@dataclass(frozen=True)
class ListOf:
    """A list of ``item`` (``what`` names them, plural); from a flag or variable (or a YAML
    string), comma-separated."""
    item: Any
    what: str
    pytype = list

    @property
    def metavar(self) -> str:
        return f"{self.item.metavar},..."

    def allowed(self) -> str:
        return f"a list of {self.what} (comma-separated in flags and variables)"

    def accept(self, value: Any) -> list:
        if isinstance(value, str):
            return self.from_text(value)
        if not isinstance(value, (list, tuple)):
            raise Invalid("is not a list")
        return [self.item.accept(v) for v in value]

    def from_text(self, text: str) -> list:
        return [self.item.from_text(part.strip()) for part in text.split(",") if part.strip()]
