"""Lexicon: the closed vocabulary of the synthetic world (names, numbers, colours, nouns, places,
cities, days, activities, verb tables, subjects), its words (:func:`vocabulary`) and the word-level
key :func:`normalize_text`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.data.synthetic.spec import AUDIO_TOKEN, PROMPTS

__all__ = [
    "ACTIVITIES",
    "ANIMALS",
    "Activity",
    "CITIES",
    "COLOURS",
    "DAYS",
    "DE_VERBS",
    "EN_VERBS",
    "NAMES",
    "NUMBERS_DE",
    "NUMBERS_EN",
    "Noun",
    "OBJECTS",
    "P1SG",
    "P3SG",
    "PLACES",
    "PPL",
    "PRONOUN_SUBJECTS",
    "Subject",
    "normalize_text",
    "vocabulary",
    "word_tokens",
]


# (name, gender) -- names are the same in English and German.
NAMES: tuple[tuple[str, str], ...] = (
    ("Anna", "f"), ("Ben", "m"), ("Clara", "f"), ("David", "m"), ("Emma", "f"), ("Felix", "m"),
    ("Lena", "f"), ("Max", "m"), ("Paul", "m"), ("Sophie", "f"), ("Tom", "m"), ("Laura", "f"),
    ("Oliver", "m"), ("Mia", "f"), ("Leon", "m"), ("Julia", "f"),
)  # fmt: skip

NUMBERS_EN = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
NUMBERS_DE = ("eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn")

# (English, German adjective stem); all decline regularly.
COLOURS: tuple[tuple[str, str], ...] = (
    ("red", "rot"), ("blue", "blau"), ("green", "grün"), ("yellow", "gelb"),
    ("black", "schwarz"), ("white", "weiß"), ("brown", "braun"), ("grey", "grau"),
)  # fmt: skip


@dataclass(frozen=True)
class Noun:
    en: str
    en_pl: str
    de: str
    de_pl: str
    gender: str  # "m" | "f" | "n"


def _nouns(rows: str) -> tuple[Noun, ...]:
    out = []
    for line in rows.strip().splitlines():
        en, en_pl, de, de_pl, g = line.split()
        out.append(Noun(en, en_pl, de, de_pl, g))
    return tuple(out)


OBJECTS = _nouns(
    """
    apple apples Apfel Äpfel m
    ball balls Ball Bälle m
    pen pens Stift Stifte m
    hat hats Hut Hüte m
    chair chairs Stuhl Stühle m
    shoe shoes Schuh Schuhe m
    key keys Schlüssel Schlüssel m
    table tables Tisch Tische m
    plate plates Teller Teller m
    balloon balloons Ballon Ballons m
    pencil pencils Bleistift Bleistifte m
    umbrella umbrellas Regenschirm Regenschirme m
    coat coats Mantel Mäntel m
    spoon spoons Löffel Löffel m
    cup cups Tasse Tassen f
    bag bags Tasche Taschen f
    flower flowers Blume Blumen f
    box boxes Kiste Kisten f
    bottle bottles Flasche Flaschen f
    lamp lamps Lampe Lampen f
    candle candles Kerze Kerzen f
    card cards Karte Karten f
    sock socks Socke Socken f
    clock clocks Uhr Uhren f
    book books Buch Bücher n
    car cars Auto Autos n
    shirt shirts Hemd Hemden n
    bike bikes Fahrrad Fahrräder n
    glass glasses Glas Gläser n
    egg eggs Ei Eier n
    boat boats Boot Boote n
    dress dresses Kleid Kleider n
    pillow pillows Kissen Kissen n
    towel towels Handtuch Handtücher n
    """
)

ANIMALS = _nouns(
    """
    dog dogs Hund Hunde m
    bird birds Vogel Vögel m
    fox foxes Fuchs Füchse m
    cat cats Katze Katzen f
    mouse mice Maus Mäuse f
    cow cows Kuh Kühe f
    duck ducks Ente Enten f
    goat goats Ziege Ziegen f
    horse horses Pferd Pferde n
    rabbit rabbits Kaninchen Kaninchen n
    pig pigs Schwein Schweine n
    sheep sheep Schaf Schafe n
    """
)

# (English noun after "in the", German prepositional phrase with dative: in dem -> im)
PLACES: tuple[tuple[str, str], ...] = (
    ("garden", "im Garten"), ("park", "im Park"), ("forest", "im Wald"),
    ("kitchen", "in der Küche"), ("school", "in der Schule"), ("barn", "in der Scheune"),
    ("garage", "in der Garage"), ("house", "im Haus"), ("room", "im Zimmer"),
    ("living room", "im Wohnzimmer"), ("water", "im Wasser"), ("car", "im Auto"),
)  # fmt: skip

CITIES: tuple[tuple[str, str], ...] = (
    ("Berlin", "Berlin"), ("Paris", "Paris"), ("London", "London"), ("Rome", "Rom"),
    ("Vienna", "Wien"), ("Madrid", "Madrid"), ("Munich", "München"), ("Hamburg", "Hamburg"),
    ("Prague", "Prag"), ("Zurich", "Zürich"), ("Oslo", "Oslo"), ("Lisbon", "Lissabon"),
    ("Amsterdam", "Amsterdam"), ("Dublin", "Dublin"),
)  # fmt: skip

DAYS: tuple[tuple[str, str], ...] = (
    ("Monday", "Montag"), ("Tuesday", "Dienstag"), ("Wednesday", "Mittwoch"),
    ("Thursday", "Donnerstag"), ("Friday", "Freitag"), ("Saturday", "Samstag"),
    ("Sunday", "Sonntag"),
)  # fmt: skip


@dataclass(frozen=True)
class Activity:
    base: str  # "play football"
    s3: str  # "plays football"
    ing: str  # "playing football"
    de: tuple[str, str, str]  # verb: 1st sg, 3rd sg, plural
    de_obj: str = ""  # separable object: Fußball, Fahrrad, Klavier


ACTIVITIES: tuple[Activity, ...] = (
    Activity("swim", "swims", "swimming", ("schwimme", "schwimmt", "schwimmen")),
    Activity("dance", "dances", "dancing", ("tanze", "tanzt", "tanzen")),
    Activity("read", "reads", "reading", ("lese", "liest", "lesen")),
    Activity("sing", "sings", "singing", ("singe", "singt", "singen")),
    Activity("cook", "cooks", "cooking", ("koche", "kocht", "kochen")),
    Activity("paint", "paints", "painting", ("male", "malt", "malen")),
    Activity("run", "runs", "running", ("laufe", "läuft", "laufen")),
    Activity("draw", "draws", "drawing", ("zeichne", "zeichnet", "zeichnen")),
    Activity("write", "writes", "writing", ("schreibe", "schreibt", "schreiben")),
    Activity("travel", "travels", "travelling", ("reise", "reist", "reisen")),
    Activity("hike", "hikes", "hiking", ("wandere", "wandert", "wandern")),
    Activity("play football", "plays football", "playing football",
             ("spiele", "spielt", "spielen"), "Fußball"),
    Activity("play the piano", "plays the piano", "playing the piano",
             ("spiele", "spielt", "spielen"), "Klavier"),
    Activity("ride a bike", "rides a bike", "riding a bike",
             ("fahre", "fährt", "fahren"), "Fahrrad"),
)  # fmt: skip

# Person index into the German (and English) verb tables.
P1SG, P3SG, PPL = 0, 1, 2

# English verb forms (1st sg, 3rd sg, plural) and German (1st sg, 3rd sg, plural).
EN_VERBS = {
    "have": ("have", "has", "have"),
    "be": ("am", "is", "are"),
    "live": ("live", "lives", "live"),
    "like": ("like", "likes", "like"),
    "do": ("do", "does", "do"),
    "see": ("see", "sees", "see"),
    "give": ("give", "gives", "give"),
    "buy": ("buy", "buys", "buy"),
}
DE_VERBS = {
    "haben": ("habe", "hat", "haben"),
    "sein": ("bin", "ist", "sind"),
    "wohnen": ("wohne", "wohnt", "wohnen"),
    "fahren": ("fahre", "fährt", "fahren"),
    "sehen": ("sehe", "sieht", "sehen"),
    "geben": ("gebe", "gibt", "geben"),
    "kaufen": ("kaufe", "kauft", "kaufen"),
}


@dataclass(frozen=True)
class Subject:
    en: str  # as written mid-sentence ("I", "we", "Anna")
    de: str  # as written mid-sentence ("ich", "wir", "Anna")
    person: int  # P1SG | P3SG | PPL

    @property
    def en_cap(self) -> str:
        return self.en[:1].upper() + self.en[1:]

    @property
    def de_cap(self) -> str:
        return self.de[:1].upper() + self.de[1:]


PRONOUN_SUBJECTS = (
    Subject("I", "ich", P1SG),
    Subject("he", "er", P3SG),
    Subject("she", "sie", P3SG),
    Subject("we", "wir", PPL),
    Subject("they", "sie", PPL),
)


def word_tokens(text: str) -> list[str]:
    return re.findall(r"[\wäöüß']+", text.lower())


def normalize_text(text: str) -> str:
    """Case-, punctuation- and whitespace-insensitive key used for de-duplication/exclusion."""
    return " ".join(word_tokens(text))


_FUNCTION_WORDS = (
    # English: articles, pronouns, prepositions, auxiliaries, question words
    "a an the i he she we they her his in on to not do does is am are years old going "
    "like likes enjoys where what how many colour animal live have has "
    # German
    "ich er sie wir der die das ein eine einen im in am nach gern nicht jahre alt"
)


def vocabulary(include_prompts: bool = True) -> set[str]:
    """Every English and German word the generators can emit (lower-cased, see ``word_tokens``),
    including inflected German adjectives, possessive names and, optionally, prompt words."""
    texts: list[str] = [_FUNCTION_WORDS]
    texts += [n for n, _ in NAMES] + [f"{n}'s" for n, _ in NAMES]
    texts += list(NUMBERS_EN) + list(NUMBERS_DE)
    texts += [w for pair in COLOURS + PLACES + CITIES + DAYS for w in pair]
    texts += [f"{de}e {de}en {de}es" for _, de in COLOURS]
    texts += [f"{n.en} {n.en_pl} {n.de} {n.de_pl}" for n in OBJECTS + ANIMALS]
    texts += [f"{a.base} {a.s3} {a.ing} {' '.join(a.de)} {a.de_obj}" for a in ACTIVITIES]
    texts += [" ".join(v) for v in list(EN_VERBS.values()) + list(DE_VERBS.values())]
    if include_prompts:
        texts += [p.replace(AUDIO_TOKEN, "") for p in PROMPTS.values()]
    words: set[str] = set()
    for t in texts:
        words.update(word_tokens(t))
    return words
