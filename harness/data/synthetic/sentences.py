"""AST / ASR sentence templates: each returns (English, German)."""

from __future__ import annotations

import random
from collections.abc import Callable

from harness.data.synthetic.grammar import de_acc_np, de_activity, de_def_nom_np, en_def_np, en_np
from harness.data.synthetic.lexicon import (
    ACTIVITIES,
    ANIMALS,
    CITIES,
    COLOURS,
    DAYS,
    DE_VERBS,
    EN_VERBS,
    NAMES,
    NUMBERS_DE,
    NUMBERS_EN,
    OBJECTS,
    P3SG,
    PLACES,
    PRONOUN_SUBJECTS,
    Subject,
)

__all__ = ["AST_TEMPLATES", "make_ast_pair"]


def _subject(rng: random.Random, p_name: float = 0.6) -> Subject:
    if rng.random() < p_name:
        name, _ = rng.choice(NAMES)
        return Subject(name, name, P3SG)
    return rng.choice(PRONOUN_SUBJECTS)


def _colour(rng: random.Random, p: float = 0.75) -> tuple[str, str] | tuple[None, None]:
    return rng.choice(COLOURS) if rng.random() < p else (None, None)


def _count(rng: random.Random, p_one: float = 0.25) -> int:
    return 1 if rng.random() < p_one else rng.randint(2, 10)


def _t_have(rng: random.Random) -> tuple[str, str]:
    s, noun, n = _subject(rng), rng.choice(OBJECTS), _count(rng)
    c_en, c_de = _colour(rng)
    en = f"{s.en_cap} {EN_VERBS['have'][s.person]} {en_np(noun, n, c_en)}."
    de = f"{s.de_cap} {DE_VERBS['haben'][s.person]} {de_acc_np(noun, n, c_de)}."
    return en, de


def _t_location(rng: random.Random) -> tuple[str, str]:
    animal, (p_en, p_de) = rng.choice(ANIMALS), rng.choice(PLACES)
    plural = rng.random() < 0.35
    c_en, c_de = _colour(rng, 0.5)
    be_en, be_de = ("are", "sind") if plural else ("is", "ist")
    en = f"{en_def_np(animal, plural, c_en)} {be_en} in the {p_en}."
    de = f"{de_def_nom_np(animal, plural, c_de)} {be_de} {p_de}."
    return en, de


def _t_likes(rng: random.Random) -> tuple[str, str]:
    s, act = _subject(rng), rng.choice(ACTIVITIES)
    if rng.random() < 0.2:
        en = f"{s.en_cap} {EN_VERBS['do'][s.person]} not like to {act.base}."
        verb, rest = de_activity(act, s.person, "nicht gern")
    else:
        en = f"{s.en_cap} {EN_VERBS['like'][s.person]} to {act.base}."
        verb, rest = de_activity(act, s.person, "gern")
    return en, f"{s.de_cap} {verb} {rest}."


def _t_travel(rng: random.Random) -> tuple[str, str]:
    s, (c_en, c_de), (d_en, d_de) = _subject(rng), rng.choice(CITIES), rng.choice(DAYS)
    en = f"{s.en_cap} {EN_VERBS['be'][s.person]} going to {c_en} on {d_en}."
    de = f"{s.de_cap} {DE_VERBS['fahren'][s.person]} am {d_de} nach {c_de}."
    return en, de


def _t_lives(rng: random.Random) -> tuple[str, str]:
    s, (c_en, c_de) = _subject(rng), rng.choice(CITIES)
    en = f"{s.en_cap} {EN_VERBS['live'][s.person]} in {c_en}."
    de = f"{s.de_cap} {DE_VERBS['wohnen'][s.person]} in {c_de}."
    return en, de


def _t_colour(rng: random.Random) -> tuple[str, str]:
    noun, (c_en, c_de) = rng.choice(OBJECTS), rng.choice(COLOURS)
    plural = rng.random() < 0.4
    en = f"{en_def_np(noun, plural)} {'are' if plural else 'is'} {c_en}."
    de = f"{de_def_nom_np(noun, plural)} {'sind' if plural else 'ist'} {c_de}."
    return en, de


def _t_age(rng: random.Random) -> tuple[str, str]:
    s = _subject(rng, 0.75)
    if s.person != P3SG:
        s = rng.choice([p for p in PRONOUN_SUBJECTS if p.person == P3SG])
    n = rng.randint(2, 10)
    en = f"{s.en_cap} is {NUMBERS_EN[n - 1]} years old."
    de = f"{s.de_cap} ist {NUMBERS_DE[n - 1]} Jahre alt."
    return en, de


def _t_weekday(rng: random.Random) -> tuple[str, str]:
    (d_en, d_de), s, act = rng.choice(DAYS), _subject(rng), rng.choice(ACTIVITIES)
    v_en = act.s3 if s.person == P3SG else act.base
    en = f"On {d_en}, {s.en} {v_en}."
    verb, rest = de_activity(act, s.person)
    de = f"Am {d_de} {verb} {s.de}" + (f" {rest}" if rest else "") + "."  # verb second
    return en, de


def _t_sees(rng: random.Random) -> tuple[str, str]:
    s, animal, n = _subject(rng), rng.choice(ANIMALS), _count(rng, 0.35)
    c_en, c_de = _colour(rng, 0.5)
    en = f"{s.en_cap} {EN_VERBS['see'][s.person]} {en_np(animal, n, c_en, article='a')}."
    de = f"{s.de_cap} {DE_VERBS['sehen'][s.person]} {de_acc_np(animal, n, c_de)}."
    return en, de


def _t_gives(rng: random.Random) -> tuple[str, str]:
    s = _subject(rng, 0.7)
    recipient = rng.choice([n for n, _ in NAMES if n != s.en])
    noun = rng.choice(OBJECTS)
    c_en, c_de = _colour(rng, 0.6)
    en = f"{s.en_cap} {EN_VERBS['give'][s.person]} {recipient} {en_np(noun, 1, c_en, article='a')}."
    de = f"{s.de_cap} {DE_VERBS['geben'][s.person]} {recipient} {de_acc_np(noun, 1, c_de)}."
    return en, de


def _t_buys(rng: random.Random) -> tuple[str, str]:
    s, noun, n, (d_en, d_de) = _subject(rng), rng.choice(OBJECTS), _count(rng), rng.choice(DAYS)
    en = f"{s.en_cap} {EN_VERBS['buy'][s.person]} {en_np(noun, n, article='a')} on {d_en}."
    de = f"{s.de_cap} {DE_VERBS['kaufen'][s.person]} am {d_de} {de_acc_np(noun, n)}."
    return en, de


AST_TEMPLATES: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "have": _t_have,
    "location": _t_location,
    "likes": _t_likes,
    "travel": _t_travel,
    "lives": _t_lives,
    "colour": _t_colour,
    "age": _t_age,
    "weekday": _t_weekday,
    "sees": _t_sees,
    "gives": _t_gives,
    "buys": _t_buys,
}
_TEMPLATE_NAMES = tuple(AST_TEMPLATES)


def make_ast_pair(rng: random.Random, template: str | None = None) -> tuple[str, str]:
    """One (English sentence, German reference) pair from a (random) template."""
    name = template or rng.choice(_TEMPLATE_NAMES)
    return AST_TEMPLATES[name](rng)
