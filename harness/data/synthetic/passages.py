"""SQA passages: a few sentences about one person, a question about one fact, a paraphrased answer."""

from __future__ import annotations

import random
from dataclasses import dataclass

from harness.data.synthetic.grammar import indefinite_article
from harness.data.synthetic.lexicon import ACTIVITIES, ANIMALS, CITIES, COLOURS, NAMES, NUMBERS_EN, OBJECTS

__all__ = ["SQAItem", "make_sqa_item"]


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
            "pet": f"{subj} has {indefinite_article(pet.en)} {pet.en}.",
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
            [f"{Pron} has {indefinite_article(pet.en)} {pet.en}.", f"{name} has {indefinite_article(pet.en)} {pet.en}.",
             f"{indefinite_article(pet.en).capitalize()} {pet.en}."],
        ),
    }[kind]  # fmt: skip
    return SQAItem(passage, question, rng.choice(answers), kind)
