"""Rewards and evaluation metrics, checked against the libraries called independently."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer

from harness.eval.metrics import METRICS, corpus_and_example_scores, corpus_scores, example_scores
from harness.rewards import REWARD_NAMES, Reward, RewardSpecError, meteor_backend, parse_reward
from harness.rewards import metrics as m
from harness.rewards.wordnet import LEXNAMES_TEXT, ensure_wordnet

REFS = [
    "the cat sat on the mat",
    "a quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
    "the weather today is sunny and warm",
]
HYPS = [
    "the cat sat on a mat",
    "a fast brown fox leaped over a lazy dog",
    "sea shells are sold by her at the shore",
    "completely unrelated words about quantum chromodynamics",
]


@pytest.fixture(scope="module")
def all_scores() -> dict[str, np.ndarray]:
    """Every metric on HYPS/REFS once (loads BERTScore and WordNet once for the module)."""
    return m.score_many(REWARD_NAMES, HYPS, REFS)


def test_exact_match_scores_one():
    refs = REFS[:3]
    scores = m.score_many(REWARD_NAMES, refs, refs)
    for name in ("bleu", "rouge1", "rouge2", "rougeL"):
        np.testing.assert_allclose(scores[name], 1.0, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(scores["bertscore"], 1.0, atol=1e-3)
    # METEOR keeps its fragmentation penalty even for an exact match: one chunk of n matches
    # gives 1 - 0.5 * (1/n)**3 (0.9977 for 6 words, as in the METEOR paper's example).
    n = np.array([len(r.split()) for r in refs])
    np.testing.assert_allclose(scores["meteor"], 1 - 0.5 / n**3, atol=1e-12)


def test_different_strings_score_low(all_scores):
    for name in ("bleu", "rouge1", "rouge2", "rougeL", "meteor"):
        assert all_scores[name][3] < 0.05, name
    assert all_scores["bertscore"][3] < 0.4
    assert all_scores["bertscore"][3] < all_scores["bertscore"][:3].min()


def test_ranges_and_dtype(all_scores):
    for name, values in all_scores.items():
        assert values.dtype == np.float64 and values.shape == (len(HYPS),)
        assert np.all((values >= 0) & (values <= 1)), name


def test_bleu_matches_sacrebleu(all_scores):
    expected = [sacrebleu.sentence_bleu(h, [r]).score / 100 for h, r in zip(HYPS, REFS)]
    np.testing.assert_allclose(all_scores["bleu"], expected, rtol=0, atol=1e-12)
    assert 0 < all_scores["bleu"][0] < 1


def test_bleu_equals_sentence_bleu_on_short_and_odd_sentences():
    # The reused BLEU object must score exactly as a fresh sacrebleu.sentence_bleu per pair (effective
    # order for short hypotheses, punctuation, case, repeated calls).
    from harness.rewards.metrics import bleu

    hyps = ["Berlin.", "She", "in Berlin", "She enjoys painting!", "she ENJOYS painting", "a a a a", "x"] * 2
    refs = [
        "She lives in Berlin.",
        "She enjoys painting.",
        "in Berlin",
        "She enjoys painting.",
        "She enjoys painting.",
        "a",
        "y z",
    ] * 2
    expected = np.clip([sacrebleu.sentence_bleu(h, [r]).score / 100 for h, r in zip(hyps, refs)], 0, 1).tolist()
    assert bleu(hyps, refs).tolist() == expected
    assert len(set(expected)) > 3


def test_rouge_matches_rouge_score(all_scores):
    scorer = rouge_scorer.RougeScorer(["rougeL", "rouge2"], use_stemmer=True)
    for i, (h, r) in enumerate(zip(HYPS, REFS)):
        s = scorer.score(r, h)
        assert all_scores["rougeL"][i] == pytest.approx(s["rougeL"].fmeasure, abs=1e-12)
        assert all_scores["rouge2"][i] == pytest.approx(s["rouge2"].fmeasure, abs=1e-12)


def test_weighted_sum_is_normalised_combination(all_scores):
    reward = parse_reward("0.3*rouge1 + 0.7*meteor")
    assert reward.components == {"rouge1": 0.3, "meteor": 0.7}
    total, parts = reward(HYPS, REFS)
    expected = (0.3 * all_scores["rouge1"] + 0.7 * all_scores["meteor"]) / 1.0
    np.testing.assert_allclose(total, expected, atol=1e-12)
    np.testing.assert_allclose(parts["meteor"], all_scores["meteor"])

    reward = parse_reward("bleu+0.5*bertscore")
    total, parts = reward(HYPS, REFS)
    assert set(parts) == {"bleu", "bertscore"}
    expected = (all_scores["bleu"] + 0.5 * all_scores["bertscore"]) / 1.5
    np.testing.assert_allclose(total, expected, atol=1e-6)
    assert total.dtype == np.float64 and np.all((total >= 0) & (total <= 1))


def test_empty_hypothesis_scores_zero():
    hyps, refs = ["", "   ", "the cat", "the cat"], ["the cat sat", "a dog", "", "the cat"]
    scores = m.score_many(REWARD_NAMES, hyps, refs)
    for name in REWARD_NAMES:
        assert np.all(scores[name][:3] == 0), name  # empty hypothesis or reference
        assert scores[name][3] > 0.5, name
    total, _ = parse_reward("bleu+rougeL+meteor+bertscore")(hyps, refs)
    assert total[0] == 0 and total[1] == 0


def test_spec_parsing():
    assert parse_reward("bleu").components == {"bleu": 1.0}
    assert parse_reward("BLEU + 2*RougeL").components == {"bleu": 1.0, "rougeL": 2.0}
    assert parse_reward("1e-1*meteor+.5*rouge2").components == {"meteor": 0.1, "rouge2": 0.5}
    assert isinstance(parse_reward("bertscore"), Reward)


@pytest.mark.parametrize(
    "spec, token",
    [
        ("blue+rouge1", "'blue'"),
        ("bleu+0.5*bertscor", "'bertscor'"),
        ("bleu+-0.5*rouge1", "negative"),
        ("bleu-rouge1", "negative"),
        ("0*bleu", "positive"),
        ("bleu++rouge1", "malformed"),
        ("0.5 bleu", "malformed"),
        ("bleu+bleu", "twice"),
        ("", "empty"),
    ],
)
def test_bad_specs_raise(spec, token):
    with pytest.raises(RewardSpecError) as err:
        parse_reward(spec)
    message = str(err.value)
    assert token in message
    assert "valid metrics: bleu, bertscore, rouge1, rouge2, rougeL, meteor" in message
    assert isinstance(err.value, ValueError)


def test_length_mismatch_raises():
    with pytest.raises(ValueError):
        parse_reward("bleu")(["a"], ["a", "b"])


def test_wordnet_lexnames_and_synonyms():
    lines = LEXNAMES_TEXT.splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1"
    assert lines[29] == "29\tverb.body\t2" and lines[44] == "44\tadj.ppl\t3"
    if not ensure_wordnet():
        assert meteor_backend() == "exact+stem"
        pytest.skip("Debian WordNet files not installed")
    assert meteor_backend() == "wordnet"
    # car/auto are WordNet synonyms. nltk matches synonyms only after stemming the leftover
    # words, so pairs whose Porter stem differs from the word (big/large) are not matched.
    hyp, ref = ["he bought a car"], ["he bought an auto"]
    with_wn = m.meteor(hyp, ref, use_wordnet=True)[0]
    without = m.meteor(hyp, ref, use_wordnet=False)[0]
    assert with_wn > without + 0.1


def test_meteor_falls_back_without_wordnet(tmp_path):
    code = (
        "from harness.rewards import meteor_backend, parse_reward\n"
        "total, _ = parse_reward('meteor')(['he bought a car'], ['he bought an auto'])\n"
        "print(meteor_backend(), repr(float(total[0])))\n"
    )
    env = {**os.environ, "HARNESS_WORDNET_SRC": str(tmp_path / "missing"), "HARNESS_CACHE": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "exact+stem"
    expected = m.meteor(["he bought a car"], ["he bought an auto"], use_wordnet=False)[0]
    assert float(out[1]) == pytest.approx(expected)
    assert not (tmp_path / "cache" / "nltk_data").exists()


def test_corpus_scores():
    hyps, refs = HYPS + ["the cat sat on the mat"], REFS + ["the cat sat on the mat"]
    scores = corpus_scores(hyps, refs)
    assert tuple(scores) == METRICS
    assert all(isinstance(v, float) and 0 <= v <= 100 for v in scores.values())
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    per = example_scores(hyps, refs)
    assert tuple(per) == METRICS
    for name in METRICS[1:]:
        assert scores[name] == pytest.approx(per[name].mean())
    assert per["bleu"][-1] == pytest.approx(100.0)
    assert corpus_scores(refs, refs)["rougeL"] == pytest.approx(100.0)
    subset = corpus_scores(hyps, refs, metrics=["meteor", "bleu"])
    assert subset == {"bleu": pytest.approx(scores["bleu"]), "meteor": pytest.approx(scores["meteor"])}
    assert tuple(example_scores(hyps, refs, metrics=["rougeL"])) == ("rougeL",)
    with pytest.raises(ValueError):
        corpus_scores(hyps, refs, metrics=["bleu4"])
    with pytest.raises(ValueError):
        corpus_scores(hyps, refs[:-1])


def test_corpus_and_example_scores_are_both_functions_bit_for_bit():
    """A test evaluation scores each metric once and gets exactly what the two separate calls give."""
    hyps, refs = HYPS + ["the cat sat on the mat"], REFS + ["the cat sat on the mat"]
    for metrics in (None, ["rougeL", "bleu", "meteor"]):
        corpus, per = corpus_and_example_scores(hyps, refs, metrics)
        assert corpus == corpus_scores(hyps, refs, metrics)  # exact float equality
        expected = example_scores(hyps, refs, metrics)
        assert tuple(per) == tuple(expected)
        for name in expected:
            np.testing.assert_array_equal(per[name], expected[name])
    with pytest.raises(ValueError):
        corpus_and_example_scores([], [])


def test_metrics_disagree_on_ranking():
    ref = ["the cat sat on the mat"] * 3
    hyps = [
        "the cat sat on a rug",  # contiguous n-grams: good BLEU
        "mat the on sat cat the",  # all unigrams, scrambled: perfect ROUGE-1
        "a kitten was sitting on the rug",  # paraphrase
    ]
    s = m.score_many(REWARD_NAMES, hyps, ref)
    assert s["bleu"][0] > s["bleu"][1]
    assert s["rouge1"][1] > s["rouge1"][0]
    rankings = {name: tuple(np.argsort(-s[name], kind="stable")) for name in REWARD_NAMES}
    assert len(set(rankings.values())) > 1


def test_every_metric_has_a_scorer_checked_at_import():
    """The scorers are a registry checked against harness.vocabulary.METRICS: a metric without a scorer
    stops the import with its name, and score_many scores a mix of metrics (ROUGE kinds in one pass)."""
    assert set(m.SCORERS) == set(METRICS)
    code = "import harness.vocabulary as v; v.METRICS = (*v.METRICS, 'chrf'); import harness.rewards.metrics"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0 and "no scorer for 'chrf'" in proc.stderr, proc.stderr[-2000:]
    mixed = m.score_many(["rougeL", "bleu", "rouge1", "bleu"], HYPS, REFS)
    assert list(mixed) == ["rougeL", "bleu", "rouge1"]
    for name in ("rougeL", "rouge1"):
        np.testing.assert_array_equal(mixed[name], m.rouge(HYPS, REFS, (name,))[name])
    np.testing.assert_array_equal(mixed["bleu"], m.bleu(HYPS, REFS))
