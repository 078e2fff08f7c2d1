"""Synthetic spoken tasks for the tiny speech-aware model: spoken QA (SQA), en->de speech
translation (AST) and speech recognition (ASR).

The tasks stand in for LibriSQA and CoVoST2 en->de. They are generated offline and
deterministically from a seed, with a closed vocabulary (~200 words) and templated sentences so a
~1-10 M parameter model can learn them on CPU in minutes, yet with enough lexical variety
(paraphrased SQA answers, several sentence shapes, German agreement and word order) that BLEU,
ROUGE, METEOR and BERTScore rank outputs differently. Speech comes from espeak-ng, resampled to
16 kHz mono by sox: the base model's pretraining speech in voice en-us (:data:`VOICE`), a study's in
the voice its config names (``data.voice``, en-gb by default, so the study's speakers are new).

Public API: :class:`Example`, :func:`load_synthetic`, :func:`load_pretraining`,
:func:`transcripts`, :func:`task_transcripts`, :data:`PROMPTS`, :data:`DEFAULT_SIZES`, :data:`DEFAULT_PRETRAIN_SIZES`; the
text-only generators :func:`generate_texts`, :func:`generate_pretraining_texts`,
:func:`make_sqa_item`, :func:`make_ast_pair`; the German noun-phrase helpers :func:`de_acc_np` and
:func:`de_def_nom_np`; :func:`normalize_text`, :func:`vocabulary`.

Cache layout (one directory per task/seed/sizes/generator version)::

    <root>/<task>-<hash>/meta.json
    <root>/<task>-<hash>/<split>/manifest.jsonl    # Example rows, audio path relative to the dir
    <root>/<task>-<hash>/audio/<id>.wav

``<root>`` is ``cache_dir`` when given, else ``harness.paths.cache_dir() / "data"``. A dataset is
built in a private temporary directory and renamed into place, so concurrent builders never see a
half-written dataset: the loser of the race discards its copy and loads the winner's.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

from harness.data import audio as _audio

GENERATOR_VERSION = 1
AUDIO_TOKEN = "<|audio|>"
VOICE = "en-us"
# espeak-ng words per minute: passages are spoken a little faster to keep them at ~2-4 s.
SPEED_PASSAGE = 190
SPEED_SENTENCE = 175

PROMPTS: dict[str, str] = {
    "sqa": AUDIO_TOKEN + " listen to the audio and answer the following question: {question}",
    "ast": AUDIO_TOKEN + " listen to the speech and translate it into German.",
    "asr": AUDIO_TOKEN + " can you transcribe the speech into a written format?",
}
TASKS = tuple(PROMPTS)

DEFAULT_SIZES: dict[str, int] = {"train": 256, "validation": 64, "test": 64}
DEFAULT_PRETRAIN_SIZES: dict[str, int] = {"train": 2048, "validation": 128}
# Generation order: the test set of a seed does not change when the train size does.
_SPLIT_ORDER = ("test", "validation", "train")


@dataclass(frozen=True)
class Example:
    id: str
    task: str  # "sqa" | "ast" | "asr"
    audio: str  # absolute path of a 16 kHz mono WAV
    prompt: str  # text prompt with exactly one <|audio|> placeholder
    answer: str  # reference output
    transcript: str  # the English text that is spoken in ``audio``


# --------------------------------------------------------------------------------------------
# Lexicon
# --------------------------------------------------------------------------------------------

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
_EN = {
    "have": ("have", "has", "have"),
    "be": ("am", "is", "are"),
    "live": ("live", "lives", "live"),
    "like": ("like", "likes", "like"),
    "do": ("do", "does", "do"),
    "see": ("see", "sees", "see"),
    "give": ("give", "gives", "give"),
    "buy": ("buy", "buys", "buy"),
}
_DE = {
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


_FUNCTION_WORDS = (
    # English: articles, pronouns, prepositions, auxiliaries, question words
    "a an the i he she we they her his in on to not do does is am are years old going "
    "like likes enjoys where what how many colour animal live have has "
    # German
    "ich er sie wir der die das ein eine einen im in am nach gern nicht jahre alt"
)


def vocabulary(include_prompts: bool = True) -> set[str]:
    """Every English and German word the generators can emit (lower-cased, see ``_words``),
    including inflected German adjectives, possessive names and, optionally, prompt words."""
    texts: list[str] = [_FUNCTION_WORDS]
    texts += [n for n, _ in NAMES] + [f"{n}'s" for n, _ in NAMES]
    texts += list(NUMBERS_EN) + list(NUMBERS_DE)
    texts += [w for pair in COLOURS + PLACES + CITIES + DAYS for w in pair]
    texts += [f"{de}e {de}en {de}es" for _, de in COLOURS]
    texts += [f"{n.en} {n.en_pl} {n.de} {n.de_pl}" for n in OBJECTS + ANIMALS]
    texts += [f"{a.base} {a.s3} {a.ing} {' '.join(a.de)} {a.de_obj}" for a in ACTIVITIES]
    texts += [" ".join(v) for v in list(_EN.values()) + list(_DE.values())]
    if include_prompts:
        texts += [p.replace(AUDIO_TOKEN, "") for p in PROMPTS.values()]
    words: set[str] = set()
    for t in texts:
        words.update(_words(t))
    return words


# --------------------------------------------------------------------------------------------
# English / German grammar helpers
# --------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.findall(r"[\wäöüß']+", text.lower())


def normalize_text(text: str) -> str:
    """Case-, punctuation- and whitespace-insensitive key used for de-duplication/exclusion."""
    return " ".join(_words(text))


def _a(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def en_np(noun: Noun, count: int, colour: str | None = None, article: str = "one") -> str:
    """English noun phrase: 'three red apples', 'one red apple' / 'a red apple' / 'an egg'."""
    head = noun.en if count == 1 else noun.en_pl
    phrase = f"{colour} {head}" if colour else head
    if count == 1:
        det = "one" if article == "one" else _a(phrase)
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


def _de_activity(act: Activity, person: int, extra: str = "") -> tuple[str, str]:
    """(finite verb, rest) for 'X schwimmt gern' / 'X spielt gern Fußball'."""
    rest = " ".join(w for w in (extra, act.de_obj) if w)
    return act.de[person], rest


# --------------------------------------------------------------------------------------------
# AST / ASR sentence templates: each returns (English, German)
# --------------------------------------------------------------------------------------------


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
    en = f"{s.en_cap} {_EN['have'][s.person]} {en_np(noun, n, c_en)}."
    de = f"{s.de_cap} {_DE['haben'][s.person]} {de_acc_np(noun, n, c_de)}."
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
        en = f"{s.en_cap} {_EN['do'][s.person]} not like to {act.base}."
        verb, rest = _de_activity(act, s.person, "nicht gern")
    else:
        en = f"{s.en_cap} {_EN['like'][s.person]} to {act.base}."
        verb, rest = _de_activity(act, s.person, "gern")
    return en, f"{s.de_cap} {verb} {rest}."


def _t_travel(rng: random.Random) -> tuple[str, str]:
    s, (c_en, c_de), (d_en, d_de) = _subject(rng), rng.choice(CITIES), rng.choice(DAYS)
    en = f"{s.en_cap} {_EN['be'][s.person]} going to {c_en} on {d_en}."
    de = f"{s.de_cap} {_DE['fahren'][s.person]} am {d_de} nach {c_de}."
    return en, de


def _t_lives(rng: random.Random) -> tuple[str, str]:
    s, (c_en, c_de) = _subject(rng), rng.choice(CITIES)
    en = f"{s.en_cap} {_EN['live'][s.person]} in {c_en}."
    de = f"{s.de_cap} {_DE['wohnen'][s.person]} in {c_de}."
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
    verb, rest = _de_activity(act, s.person)
    de = f"Am {d_de} {verb} {s.de}" + (f" {rest}" if rest else "") + "."  # verb second
    return en, de


def _t_sees(rng: random.Random) -> tuple[str, str]:
    s, animal, n = _subject(rng), rng.choice(ANIMALS), _count(rng, 0.35)
    c_en, c_de = _colour(rng, 0.5)
    en = f"{s.en_cap} {_EN['see'][s.person]} {en_np(animal, n, c_en, article='a')}."
    de = f"{s.de_cap} {_DE['sehen'][s.person]} {de_acc_np(animal, n, c_de)}."
    return en, de


def _t_gives(rng: random.Random) -> tuple[str, str]:
    s = _subject(rng, 0.7)
    recipient = rng.choice([n for n, _ in NAMES if n != s.en])
    noun = rng.choice(OBJECTS)
    c_en, c_de = _colour(rng, 0.6)
    en = f"{s.en_cap} {_EN['give'][s.person]} {recipient} {en_np(noun, 1, c_en, article='a')}."
    de = f"{s.de_cap} {_DE['geben'][s.person]} {recipient} {de_acc_np(noun, 1, c_de)}."
    return en, de


def _t_buys(rng: random.Random) -> tuple[str, str]:
    s, noun, n, (d_en, d_de) = _subject(rng), rng.choice(OBJECTS), _count(rng), rng.choice(DAYS)
    en = f"{s.en_cap} {_EN['buy'][s.person]} {en_np(noun, n, article='a')} on {d_en}."
    de = f"{s.de_cap} {_DE['kaufen'][s.person]} am {d_de} {de_acc_np(noun, n)}."
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


# --------------------------------------------------------------------------------------------
# SQA passages
# --------------------------------------------------------------------------------------------

_PRONOUN = {"f": ("She", "she", "Her"), "m": ("He", "he", "His")}


@dataclass(frozen=True)
class SQAItem:
    passage: str
    question: str
    answer: str
    kind: str  # which fact the question is about


def make_sqa_item(rng: random.Random) -> SQAItem:
    """A 2-3 sentence passage about one person, a question about one fact, a paraphrased answer.

    The answer is drawn from 3 phrasings (full sentence with the name, with a pronoun, or a
    short fragment), so it is often not a verbatim span of the passage.
    """
    name, gender = rng.choice(NAMES)
    Pron, _pron, Poss = _PRONOUN[gender]
    city = rng.choice(CITIES)[0]
    num = rng.randint(2, 10)
    colour = rng.choice(COLOURS)[0]
    noun = rng.choice(OBJECTS)
    act = rng.choice(ACTIVITIES)
    age = rng.randint(2, 10)
    pet = rng.choice(ANIMALS)
    facts = rng.sample(["city", "possession", "activity", "age", "pet"], rng.choice((2, 3)))

    def sentence(kind: str, subj: str) -> str:
        return {
            "city": f"{subj} lives in {city}.",
            "possession": f"{subj} has {NUMBERS_EN[num - 1]} {colour} {noun.en_pl}.",
            "activity": f"{subj} likes to {act.base}.",
            "age": f"{subj} is {NUMBERS_EN[age - 1]} years old.",
            "pet": f"{subj} has {_a(pet.en)} {pet.en}.",
        }[kind]

    passage = " ".join(sentence(k, name if i == 0 else Pron) for i, k in enumerate(facts))
    kind = rng.choice(facts)
    if kind == "possession":
        kind = rng.choice(("count", "colour"))
    n_num, n_age = NUMBERS_EN[num - 1], NUMBERS_EN[age - 1]
    question, answers = {
        "city": (
            f"Where does {name} live?",
            [f"{name} lives in {city}.", f"{Pron} lives in {city}.", f"In {city}."],
        ),
        "count": (
            f"How many {noun.en_pl} does {name} have?",
            [f"{Pron} has {n_num} {noun.en_pl}.", f"{name} has {n_num} {noun.en_pl}.",
             f"{n_num.capitalize()} {noun.en_pl}."],
        ),
        "colour": (
            f"What colour are {name}'s {noun.en_pl}?",
            [f"{Poss} {noun.en_pl} are {colour}.", f"They are {colour}.",
             f"{name}'s {noun.en_pl} are {colour}."],
        ),
        "activity": (
            f"What does {name} like to do?",
            [f"{Pron} likes {act.ing}.", f"{name} likes to {act.base}.",
             f"{Pron} enjoys {act.ing}."],
        ),
        "age": (
            f"How old is {name}?",
            [f"{Pron} is {n_age} years old.", f"{name} is {n_age}.",
             f"{n_age.capitalize()} years old."],
        ),
        "pet": (
            f"What animal does {name} have?",
            [f"{Pron} has {_a(pet.en)} {pet.en}.", f"{name} has {_a(pet.en)} {pet.en}.",
             f"{_a(pet.en).capitalize()} {pet.en}."],
        ),
    }[kind]  # fmt: skip
    return SQAItem(passage, question, rng.choice(answers), kind)


# --------------------------------------------------------------------------------------------
# Text generation per task
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TextItem:
    task: str
    transcript: str
    prompt: str
    answer: str
    speed: int


def _sqa_text(rng: random.Random) -> _TextItem:
    item = make_sqa_item(rng)
    prompt = PROMPTS["sqa"].format(question=item.question)
    return _TextItem("sqa", item.passage, prompt, item.answer, SPEED_PASSAGE)


def _ast_text(rng: random.Random) -> _TextItem:
    en, de = make_ast_pair(rng)
    return _TextItem("ast", en, PROMPTS["ast"], de, SPEED_SENTENCE)


def _asr_text(rng: random.Random) -> _TextItem:
    # ASR sentences of the same kinds as the SQA passages and the AST sentences.
    if rng.random() < 0.5:
        text, speed = make_sqa_item(rng).passage, SPEED_PASSAGE
    else:
        text, speed = make_ast_pair(rng)[0], SPEED_SENTENCE
    return _TextItem("asr", text, PROMPTS["asr"], text, speed)


_GENERATORS: dict[str, Callable[[random.Random], _TextItem]] = {
    "sqa": _sqa_text,
    "ast": _ast_text,
    "asr": _asr_text,
}


def _ordered_splits(sizes: Mapping[str, int]) -> list[str]:
    known = [s for s in _SPLIT_ORDER if s in sizes]
    return known + sorted(s for s in sizes if s not in _SPLIT_ORDER)


def _check_sizes(sizes: Mapping[str, int]) -> dict[str, int]:
    if not sizes:
        raise ValueError("sizes must name at least one split")
    out = {}
    for split, n in sizes.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", str(split)):
            raise ValueError(f"bad split name {split!r}")
        if int(n) < 0:
            raise ValueError(f"split {split!r} has negative size {n}")
        out[str(split)] = int(n)
    return out


def reserved_for_pretraining(text: str) -> bool:
    """The text space is split once and for all: a quarter (by hash of the normalised transcript)
    belongs to the base model's pretraining, the rest to the study tasks. So no spoken text of any
    SQA/AST split, whatever its seed or size, can occur in pretraining."""
    return int(hashlib.sha256(normalize_text(text).encode()).hexdigest(), 16) % 4 == 0


def _unique_stream(
    make: Callable[[random.Random], _TextItem], rng: random.Random, seen: set[str], n: int,
    pretraining: bool = False,
) -> list[_TextItem]:
    """Draw ``n`` items whose normalised transcripts are not in ``seen`` (updated in place) and lie
    in the pretraining part of the text space if ``pretraining`` else in the task part."""
    out: list[_TextItem] = []
    attempts, max_attempts = 0, 200 * n + 1000
    while len(out) < n:
        attempts += 1
        if attempts > max_attempts:
            raise ValueError(
                f"could not draw {n} distinct texts ({len(out)} found): the template space is "
                "too small for the requested sizes"
            )
        item = make(rng)
        key = normalize_text(item.transcript)
        if key in seen or reserved_for_pretraining(key) != pretraining:
            continue
        seen.add(key)
        out.append(item)
    return out


def generate_texts(task: str, sizes: Mapping[str, int], seed: int = 0) -> dict[str, list[_TextItem]]:
    """The texts of :func:`load_synthetic` without audio (deterministic, no duplicates)."""
    if task not in _GENERATORS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(_GENERATORS)}")
    sizes = _check_sizes(sizes)
    rng = random.Random(f"synthetic:{task}:v{GENERATOR_VERSION}:{seed}")
    seen: set[str] = set()
    return {
        split: _unique_stream(_GENERATORS[task], rng, seen, sizes[split])
        for split in _ordered_splits(sizes)
    }


def generate_pretraining_texts(
    sizes: Mapping[str, int], seed: int = 0, exclude: Iterable[str] = (), ast_fraction: float = 0.5,
    sqa_fraction: float = 0.0,
) -> dict[str, list[_TextItem]]:
    """Texts of :func:`load_pretraining`: a shuffled mix per split of AST pairs (``ast_fraction``),
    spoken QA items (``sqa_fraction``) and ASR items (half SQA-style passages, half AST-style
    sentences), all spoken texts distinct, in the pretraining part of the text space, and disjoint
    (after :func:`normalize_text`) from ``exclude``."""
    sizes = _check_sizes(sizes)
    if not (0.0 <= ast_fraction and 0.0 <= sqa_fraction and ast_fraction + sqa_fraction <= 1.0):
        raise ValueError("ast_fraction and sqa_fraction must be >= 0 and sum to at most 1")
    rng = random.Random(f"pretraining:v{GENERATOR_VERSION}:{seed}")
    seen = {normalize_text(t) for t in exclude}

    def asr_passage(r: random.Random) -> _TextItem:
        text = make_sqa_item(r).passage
        return _TextItem("asr", text, PROMPTS["asr"], text, SPEED_PASSAGE)

    def asr_sentence(r: random.Random) -> _TextItem:
        text = make_ast_pair(r)[0]
        return _TextItem("asr", text, PROMPTS["asr"], text, SPEED_SENTENCE)

    out: dict[str, list[_TextItem]] = {}
    for split in _ordered_splits(sizes):
        n = sizes[split]
        n_ast, n_sqa = round(n * ast_fraction), round(n * sqa_fraction)
        n_passage = (n - n_ast - n_sqa) // 2
        n_sentence = n - n_ast - n_sqa - n_passage
        items = (
            _unique_stream(_ast_text, rng, seen, n_ast, pretraining=True)
            + _unique_stream(_sqa_text, rng, seen, n_sqa, pretraining=True)
            + _unique_stream(asr_passage, rng, seen, n_passage, pretraining=True)
            + _unique_stream(asr_sentence, rng, seen, n_sentence, pretraining=True)
        )
        rng.shuffle(items)
        out[split] = items
    return out


# --------------------------------------------------------------------------------------------
# Cache: build atomically, load from manifest
# --------------------------------------------------------------------------------------------


def _digest(obj: object, n: int = 12) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:n]


def _data_root(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    from harness import paths

    return paths.cache_dir() / "data"


def _read_dataset(directory: Path, splits: Iterable[str]) -> dict[str, list[Example]] | None:
    """Examples from a finished cache directory, or None when it is incomplete or damaged."""
    if not (directory / "meta.json").is_file():
        return None
    out: dict[str, list[Example]] = {}
    try:
        for split in splits:
            rows = []
            with open(directory / split / "manifest.jsonl", encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        row = json.loads(line)
                        row["audio"] = str((directory / row["audio"]).resolve())
                        rows.append(Example(**row))
            out[split] = rows
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not all(Path(ex.audio).is_file() for rows in out.values() for ex in rows):
        return None
    return out


def _build_dataset(
    final: Path,
    texts: Mapping[str, list[_TextItem]],
    id_prefix: str,
    meta: dict,
    workers: int | None,
) -> None:
    """Synthesise ``texts`` into a private temp dir, write manifests, rename it to ``final``."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        t0 = time.perf_counter()
        rows: dict[str, list[dict]] = {}
        jobs: dict[int, list[tuple[str, Path]]] = {}
        for split, items in texts.items():
            rows[split] = []
            for i, item in enumerate(items):
                ex_id = f"{id_prefix}-{split}-{i:05d}"
                rel = f"audio/{ex_id}.wav"
                jobs.setdefault(item.speed, []).append((item.transcript, tmp / rel))
                rows[split].append(
                    asdict(Example(ex_id, item.task, rel, item.prompt, item.answer, item.transcript))
                )
        (tmp / "audio").mkdir()
        for speed, batch in sorted(jobs.items()):
            _audio.synthesize_many(batch, voice=meta.get("voice", VOICE), speed=speed, workers=workers)
        synth_s = time.perf_counter() - t0
        for split, split_rows in rows.items():
            (tmp / split).mkdir()
            with open(tmp / split / "manifest.jsonl", "w", encoding="utf-8") as fh:
                for row in split_rows:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        meta = dict(meta, n_clips=sum(len(b) for b in jobs.values()), synth_seconds=synth_s)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False))
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            # Another process finished the same dataset first: keep theirs.
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load_or_build(
    name: str,
    root: Path,
    splits: list[str],
    make_texts: Callable[[], Mapping[str, list[_TextItem]]],
    id_prefix: str,
    meta: dict,
    workers: int | None,
) -> dict[str, list[Example]]:
    final = root / name
    cached = _read_dataset(final, splits)
    if cached is not None:
        return cached
    if final.exists():  # damaged (e.g. audio deleted by hand): move aside and rebuild
        stale = final.parent / f".{final.name}.stale-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(final, stale)
            shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass
    _build_dataset(final, make_texts(), id_prefix, meta, workers)
    built = _read_dataset(final, splits)
    if built is None:
        raise RuntimeError(f"synthetic dataset at {final} is incomplete after building it")
    return built


def load_synthetic(
    task: str,
    sizes: Mapping[str, int] | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    workers: int | None = None,
    voice: str = VOICE,
) -> dict[str, list[Example]]:
    """Synthetic spoken dataset for ``task`` ("sqa", "ast" or "asr"), split as ``sizes``, spoken by
    the espeak-ng ``voice`` (the base model is pretrained on ``VOICE``; another voice makes the task
    an acoustic adaptation, as new speakers are for a real checkpoint).

    Texts are a deterministic function of (task, seed); splits are drawn in the order test,
    validation, train from one stream of distinct transcripts, so no spoken text repeats across
    splits and the test set does not depend on the train size. Audio is synthesised once and cached
    under ``(cache_dir or harness.paths.cache_dir()/"data") / f"{task}-{hash}"``; later calls read
    the manifests and never run espeak-ng.
    """
    sizes = _check_sizes(DEFAULT_SIZES if sizes is None else sizes)
    if task not in _GENERATORS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(_GENERATORS)}")
    key = {
        "kind": "synthetic",
        "version": GENERATOR_VERSION,
        "task": task,
        "seed": seed,
        "sizes": sizes,
        "voice": voice,
        "speeds": [SPEED_PASSAGE, SPEED_SENTENCE],
        "audio": _audio.PIPELINE_VERSION,
    }
    return _load_or_build(
        f"{task}-{_digest(key)}",
        _data_root(cache_dir),
        _ordered_splits(sizes),
        lambda: generate_texts(task, sizes, seed),
        task,
        key,
        workers,
    )


def load_pretraining(
    sizes: Mapping[str, int] | None = None,
    seed: int = 0,
    exclude: Iterable[str] = (),
    cache_dir: Path | None = None,
    ast_fraction: float = 0.5,
    sqa_fraction: float = 0.0,
    workers: int | None = None,
) -> dict[str, list[Example]]:
    """Pretraining data for the tiny base model: ASR (task "asr", answer = transcript) and AST
    (task "ast") examples, shuffled together per split, from a seed stream separate from
    :func:`load_synthetic`'s. No spoken text equals (after :func:`normalize_text`) any text in
    ``exclude``: pass :func:`transcripts` of every SQA/AST split the model is later tuned or
    evaluated on. ``sizes`` counts all examples of a split; ``ast_fraction`` of them are AST.
    """
    sizes = _check_sizes(DEFAULT_PRETRAIN_SIZES if sizes is None else sizes)
    excluded = sorted({normalize_text(t) for t in exclude})
    key = {
        "kind": "pretraining",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "sizes": sizes,
        "ast_fraction": ast_fraction,
        "sqa_fraction": sqa_fraction,
        "exclude": _digest(excluded, 64),
        "n_excluded": len(excluded),
        "voice": VOICE,
        "speeds": [SPEED_PASSAGE, SPEED_SENTENCE],
        "audio": _audio.PIPELINE_VERSION,
    }
    return _load_or_build(
        f"pretrain-{_digest(key)}",
        _data_root(cache_dir),
        _ordered_splits(sizes),
        lambda: generate_pretraining_texts(sizes, seed, excluded, ast_fraction, sqa_fraction),
        "pre",
        key,
        workers,
    )


def transcripts(*datasets: Mapping[str, list[Example]] | Iterable[Example]) -> set[str]:
    """All spoken texts of the given datasets (dicts of splits or plain example lists)."""
    out: set[str] = set()
    for ds in datasets:
        groups = ds.values() if isinstance(ds, Mapping) else [ds]
        for group in groups:
            out.update(ex.transcript for ex in group)
    return out


def task_transcripts(
    sizes: Mapping[str, int] | None = None,
    seeds: Iterable[int] = (0,),
    tasks: Iterable[str] = ("sqa", "ast"),
) -> set[str]:
    """Spoken texts of ``load_synthetic(task, sizes, seed)`` for every task and seed, computed from
    text alone (no audio): the ``exclude`` set for :func:`load_pretraining`."""
    sizes = DEFAULT_SIZES if sizes is None else sizes
    return {
        it.transcript
        for task in tasks
        for seed in seeds
        for items in generate_texts(task, sizes, seed).values()
        for it in items
    }


def write_manifest(examples: Iterable[Example], path: Path) -> None:
    """Write examples as JSON lines (absolute audio paths), e.g. for inspection or export."""
    with open(path, "w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(asdict(ex), ensure_ascii=False) + "\n")


def read_manifest(path: Path) -> list[Example]:
    """Read examples written by :func:`write_manifest` (audio paths relative to the file's dir)."""
    path = Path(path)
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                row["audio"] = str((path.parent / row["audio"]).resolve())
                out.append(Example(**row))
    return out
