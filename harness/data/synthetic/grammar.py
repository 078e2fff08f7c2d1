"""English / German grammar helpers: articles, noun phrases (with German adjective declension), verbs."""

from __future__ import annotations

from harness.data.synthetic.lexicon import NUMBERS_DE, NUMBERS_EN, Activity, Noun

__all__ = ["de_acc_np", "de_activity", "de_def_nom_np", "en_def_np", "en_np", "indefinite_article"]


def indefinite_article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def en_np(noun: Noun, count: int, colour: str | None = None, article: str = "one") -> str:
    """English noun phrase: 'three red apples', 'one red apple' / 'a red apple' / 'an egg'."""
    head = noun.en if count == 1 else noun.en_pl
    phrase = f"{colour} {head}" if colour else head
    if count == 1:
        det = "one" if article == "one" else indefinite_article(phrase)
        return f"{det} {phrase}"
    return f"{NUMBERS_EN[count - 1]} {phrase}"


def de_acc_np(noun: Noun, count: int, colour_de: str | None = None) -> str:
    """German accusative indefinite noun phrase with correct adjective declension.

    singular (mixed declension): einen roten Apfel / eine rote Tasse / ein rotes Buch;
    plural without article (strong declension): drei rote Äpfel.
    """
    if count == 1:
        det, ending = {"m": ("einen", "en"), "f": ("eine", "e"), "n": ("ein", "es")}[noun.gender]
        adj = f"{colour_de}{ending} " if colour_de else ""
        return f"{det} {adj}{noun.de}"
    adj = f"{colour_de}e " if colour_de else ""
    return f"{NUMBERS_DE[count - 1]} {adj}{noun.de_pl}"


def de_def_nom_np(noun: Noun, plural: bool, colour_de: str | None = None) -> str:
    """German nominative definite noun phrase (weak declension), capitalised for sentence start:
    Der schwarze Hund / Die schwarze Katze / Das schwarze Pferd / Die schwarzen Hunde."""
    if plural:
        adj = f"{colour_de}en " if colour_de else ""
        return f"Die {adj}{noun.de_pl}"
    art = {"m": "Der", "f": "Die", "n": "Das"}[noun.gender]
    adj = f"{colour_de}e " if colour_de else ""
    return f"{art} {adj}{noun.de}"


def en_def_np(noun: Noun, plural: bool, colour: str | None = None) -> str:
    head = noun.en_pl if plural else noun.en
    return f"The {colour} {head}" if colour else f"The {head}"


def de_activity(act: Activity, person: int, extra: str = "") -> tuple[str, str]:
    """(finite verb, rest) for 'X schwimmt gern' / 'X spielt gern Fußball'."""
    rest = " ".join(w for w in (extra, act.de_obj) if w)
    return act.de[person], rest
