"""A small English sentence generator: word lists, templates, numbers and punctuation.

The corpus needs varied but reproducible text; a seeded random.Random drives every choice.
"""
from __future__ import annotations

import random

_NAMES = "Anna Bruno Clara Daniel Elena Felix Grace Henry Iris Jonas Karen Leo Maya Nora Oscar Paula".split()
_NOUNS = ("river garden window station letter market engine island teacher doctor village bridge "
          "mountain library kitchen harbor lantern journey forest painting museum orchestra "
          "telescope machine festival bicycle umbrella weather morning evening").split()
_ADJECTIVES = ("quiet bright narrow ancient gentle heavy curious silver golden careful distant "
               "sudden patient wooden broken famous hidden rapid simple warm").split()
_VERBS_PAST = ("found carried opened painted repaired visited noticed described followed measured "
               "borrowed delivered crossed explored remembered").split()
_VERBS_BASE = "find carry open paint repair visit notice describe follow measure borrow deliver cross".split()
_PLACES = "near the station|across the river|behind the old mill|inside the library|at the harbor|" \
          "on the northern road|under the bridge|beside the market".split("|")
_TIMES = "yesterday|last winter|in the morning|after midnight|before the storm|on Monday|" \
         "early in spring|at half past nine".split("|")
_UNITS = "miles|kilometers|minutes|pages|boxes|letters|years|degrees".split("|")
_MONTHS = "January February March April May June July August September October November December".split()

_TEMPLATES = (
    "{name} {verb} the {adj} {noun} {place}.",
    "The {adj} {noun} was {verb} {time}, and nobody said a word.",
    "Did {name} really {base} {count} {unit} {time}?",
    "After {count} {unit}, the {noun} finally stopped; {name} smiled.",
    "On the {ordinal} of {month}, {name} {verb} a {adj} {noun}!",
    "\"Please {base} the {noun},\" said {name}, \"before it gets dark.\"",
    "Nearly {percent}% of the {noun}s {place} were {adj}.",
    "{name} and {name2} {verb} {count} {adj} {noun}s {time}.",
    "It cost {price} dollars, which seemed {adj} for such a {noun}.",
    "Why would anyone {base} a {adj} {noun} {place}?",
    "In {year}, the {noun} {place} was {verb} by {name}.",
    "The {noun}, the {noun2}, and the {adj} {noun3}: all of them {verb} {time}.",
)


def _ordinal_suffix(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def generate_sentence(rng: random.Random) -> str:
    """One sentence; the same generator state always gives the same sentence."""
    names = rng.sample(_NAMES, 2)
    nouns = rng.sample(_NOUNS, 3)
    fields = {
        "name": names[0], "name2": names[1],
        "noun": nouns[0], "noun2": nouns[1], "noun3": nouns[2],
        "adj": rng.choice(_ADJECTIVES),
        "verb": rng.choice(_VERBS_PAST), "base": rng.choice(_VERBS_BASE),
        "place": rng.choice(_PLACES), "time": rng.choice(_TIMES),
        "count": rng.randint(2, 99), "unit": rng.choice(_UNITS),
        "ordinal": _ordinal_suffix(rng.randint(1, 28)), "month": rng.choice(_MONTHS),
        "percent": rng.randint(5, 95), "price": f"{rng.randint(1, 900)}.{rng.randint(10, 99)}",
        "year": rng.randint(1890, 2024),
    }
    return rng.choice(_TEMPLATES).format(**fields)
