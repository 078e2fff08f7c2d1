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
:func:`transcripts`, :func:`task_transcripts`, :data:`PROMPTS`, :data:`DEFAULT_SIZES`,
:data:`DEFAULT_PRETRAIN_SIZES`; the
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

Modules, in the order the data is made:

    spec       generator version, voice and speeds, prompts, default sizes, the `Example` row
    lexicon    the closed vocabulary (names, nouns, colours, places, activities, verb tables),
               `vocabulary`, `normalize_text`
    grammar    English / German noun phrases and verbs (`en_np`, `de_acc_np`, `de_def_nom_np`)
    sentences  AST / ASR sentence templates, `make_ast_pair`
    passages   SQA passages, questions and paraphrased answers, `make_sqa_item`
    texts      texts per task and split (`generate_texts`, `generate_pretraining_texts`), the
               pretraining / task split of the text space (`reserved_for_pretraining`)
    cache      `load_synthetic`, `load_pretraining`: build atomically, load from manifest;
               `transcripts`, `task_transcripts`, `write_manifest`, `read_manifest`
"""

from harness.data.synthetic.cache import (
    load_pretraining,
    load_synthetic,
    read_manifest,
    task_transcripts,
    transcripts,
    write_manifest,
)
from harness.data.synthetic.grammar import de_acc_np, de_def_nom_np, en_def_np, en_np
from harness.data.synthetic.lexicon import (
    ACTIVITIES,
    ANIMALS,
    CITIES,
    COLOURS,
    DAYS,
    NAMES,
    NUMBERS_DE,
    NUMBERS_EN,
    OBJECTS,
    P1SG,
    P3SG,
    PLACES,
    PPL,
    PRONOUN_SUBJECTS,
    Activity,
    Noun,
    Subject,
    normalize_text,
    vocabulary,
    word_tokens,
)
from harness.data.synthetic.passages import SQAItem, make_sqa_item
from harness.data.synthetic.sentences import AST_TEMPLATES, make_ast_pair
from harness.data.synthetic.spec import (
    AUDIO_TOKEN,
    DEFAULT_PRETRAIN_SIZES,
    DEFAULT_SIZES,
    GENERATOR_VERSION,
    PROMPTS,
    SPEED_PASSAGE,
    SPEED_SENTENCE,
    TASKS,
    VOICE,
    Example,
)
from harness.data.synthetic.texts import (
    TextItem,
    generate_pretraining_texts,
    generate_texts,
    reserved_for_pretraining,
    unique_stream,
)

__all__ = [
    "ACTIVITIES",
    "ANIMALS",
    "AST_TEMPLATES",
    "AUDIO_TOKEN",
    "CITIES",
    "COLOURS",
    "DAYS",
    "DEFAULT_PRETRAIN_SIZES",
    "DEFAULT_SIZES",
    "GENERATOR_VERSION",
    "NAMES",
    "NUMBERS_DE",
    "NUMBERS_EN",
    "OBJECTS",
    "P1SG",
    "P3SG",
    "PLACES",
    "PPL",
    "PROMPTS",
    "PRONOUN_SUBJECTS",
    "SPEED_PASSAGE",
    "SPEED_SENTENCE",
    "SQAItem",
    "TASKS",
    "VOICE",
    "Activity",
    "Example",
    "Noun",
    "Subject",
    "de_acc_np",
    "de_def_nom_np",
    "en_def_np",
    "en_np",
    "generate_pretraining_texts",
    "generate_texts",
    "load_pretraining",
    "load_synthetic",
    "make_ast_pair",
    "make_sqa_item",
    "normalize_text",
    "read_manifest",
    "reserved_for_pretraining",
    "task_transcripts",
    "transcripts",
    "vocabulary",
    "write_manifest",
    # private, kept here because tests reach them through this package (S._words, ...)
    "TextItem",
    "unique_stream",
    "word_tokens",
]
