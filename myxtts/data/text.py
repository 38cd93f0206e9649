"""Text normalization and the character tokenizer.

The model reads characters, so everything a speaker would say out loud has to be spelled out:
numbers become words, abbreviations are expanded, case is folded and accents are stripped.
"""
from __future__ import annotations

import json
import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint", "no": "number",
                  "vs": "versus", "etc": "et cetera", "approx": "approximately"}
_ABBREV_RE = re.compile(r"\b(" + "|".join(_ABBREVIATIONS) + r")\.", re.IGNORECASE)
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_PERCENT_RE = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_WHITESPACE_RE = re.compile(r"\s+")
_THOUSANDS_RE = re.compile(r"\b\d{1,3}(?:,\d{3})+\b")


def number_to_words(n: int) -> str:
    """Spell a non-negative integer below one billion in English words."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " and " + number_to_words(rest))
    for size, name in ((10**6, "million"), (10**3, "thousand")):
        if n >= size:
            big, rest = divmod(n, size)
            if big >= 1000 and size == 10**6:
                break
            sep = "" if rest == 0 else (" and " if rest < 100 else " ")
            return number_to_words(big) + " " + name + ("" if rest == 0 else sep + number_to_words(rest))
    return " ".join(_ONES[int(d)] for d in str(n))


def _ordinal(n: int) -> str:
    words = number_to_words(n)
    irregular = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                 "nine": "ninth", "twelve": "twelfth"}
    head, _, last = words.rpartition(" ")
    if last in irregular:
        last = irregular[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return (head + " " + last).strip()


def _spell_number(match: re.Match) -> str:
    text = match.group(0)
    if "." in text:
        whole, frac = text.split(".")
        return number_to_words(int(whole)) + " point " + " ".join(_ONES[int(d)] for d in frac)
    return number_to_words(int(text))


def normalize_text(text: str) -> str:
    """Spell out what is spoken: numbers, ordinals, percentages and common abbreviations."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _ABBREV_RE.sub(lambda m: _ABBREVIATIONS[m.group(1).lower()], text)
    text = _THOUSANDS_RE.sub(lambda m: m.group(0).replace(",", ""), text)
    text = _PERCENT_RE.sub(lambda m: m.group(1) + " percent", text)
    text = _ORDINAL_RE.sub(lambda m: _ordinal(int(m.group(1))), text)
    text = _NUMBER_RE.sub(_spell_number, text)
    text = text.lower().replace("&", " and ")
    return _WHITESPACE_RE.sub(" ", text).strip()


PAD, EOS = "_", "~"
DEFAULT_SYMBOLS = PAD + EOS + " abcdefghijklmnopqrstuvwxyz'.,;:!?-\"()"
# Characters that have a spoken stand-in in the symbol table rather than being dropped.
_CHARACTER_MAP = {"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
                  "[": "(", "]": ")", "/": " ", "_": " ", "~": " "}


@dataclass
class CharTokenizer:
    """Maps normalized text to integer ids; id 0 is padding, id 1 ends every sequence."""

    symbols: str = DEFAULT_SYMBOLS
    unknown_counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.symbols[:2] != PAD + EOS or len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"symbols: must start with {PAD!r}{EOS!r} and contain no duplicates")
        self._ids = {c: i for i, c in enumerate(self.symbols)}

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        kept = []
        for char in normalize_text(text):
            char = _CHARACTER_MAP.get(char, char)
            if char in self._ids:
                kept.append(char)
            else:
                self.unknown_counts[char] = self.unknown_counts.get(char, 0) + 1
        spoken = _WHITESPACE_RE.sub(" ", "".join(kept)).strip()
        return [self._ids[c] for c in spoken] + [self._ids[EOS]]

    def decode(self, ids) -> str:
        return "".join(self.symbols[i] for i in ids if 1 < i < len(self.symbols))

    def warn_unknown(self) -> None:
        """Report, once, every character that was dropped because the symbol table lacks it."""
        if self.unknown_counts:
            listed = ", ".join(f"{c!r}×{n}" for c, n in sorted(self.unknown_counts.items()))
            warnings.warn(f"tokenizer dropped characters not in the symbol table: {listed}", stacklevel=2)
            self.unknown_counts.clear()

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps({"symbols": self.symbols}, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> "CharTokenizer":
        return cls(symbols=json.loads(Path(path).read_text())["symbols"])
