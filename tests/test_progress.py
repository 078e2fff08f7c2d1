"""What `harness sweep` shows on the terminal: one line per finished trial with [k/N], its configuration and
seed, its state and objective, its wall time, the sweep's elapsed time and ETA (N read from the study as
it grows); a line when the task's data starts and ends loading; the same lines from a `--workers N`
parent that only sees the storage; and a live bar on a terminal. Real sweeps use fake trials
(tests/fakes.py) with real MLflow and Optuna stores."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
from fakes import study_file
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from harness.study import load_study
from harness.sweep import run_sweep
from harness.sweep.display import Display, Finished, config_text
from harness.vocabulary import PHASES_ATTR, TOTAL_TRIALS_ATTR

LINE = re.compile(
    r"^\[(\d+)/(\d+)\] trial (\d+) (.+?) seed=(\S+) (COMPLETE|PRUNED|FAIL)(?: (.*))? "
    r"\((\S+); elapsed (\S+), ETA (\S+)\)$"
)


def trial_lines(text: str) -> list[re.Match]:
    return [m for m in map(LINE.match, text.splitlines()) if m]


def test_sweep_prints_one_line_per_trial(tmp_path: Path, stores, fake, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "0")  # stderr is not a terminal here, whatever the environment says
    fake(
        test_bleu=lambda cfg: {"bleu": 11.0, "rouge1": 13.25}[cfg.grpo.reward] if cfg.method == "grpo" else 12.5,
        fail=lambda cfg: cfg.method == "grpo" and cfg.grpo.reward == "rouge1" and cfg.seed == 1,
    )
    path = study_file(
        tmp_path,
        """
        space:
          grpo.reward: {choices: [bleu, rouge1], when: {method: grpo}}
        seeds: [0, 1]
        baselines:
          - {method: sft}
        objective: {metric: test/bleu}
        """,
        "progress",
    )
    storage, uri = stores
    result = run_sweep(load_study(path), storage=storage, tracking_uri=uri, progress=True)
    err = capsys.readouterr().err
    lines = trial_lines(err)
    assert len(lines) == 6, err  # 2 sft + 4 grpo trials, one failed
    by_number = {int(m[3]): m for m in lines}
    counted = 0
    for m in lines:  # in the order they ended: k counts COMPLETE (and PRUNED) trials; a FAIL is re-run
        trial = result.trials[int(m[3])]
        counted += trial.state == TrialState.COMPLETE
        assert (int(m[1]), int(m[2])) == (counted, 6), m[0]
        assert m[6] == trial.state.name and m[5] == str(trial.params["seed"])
        if trial.user_attrs["label"] == "sft":
            assert m[4] == "sft"
        else:
            assert m[4] == f"grpo reward={trial.params['grpo.reward']}"
        if trial.state == TrialState.COMPLETE:
            assert m[7] == f"test/bleu={trial.value:.2f}"
        else:
            assert m[7] == "FloatingPointError: loss is NaN at step 2"
        assert m[10] != "?"  # a trial has ended: the ETA is an estimate
    assert sum(m[6] == "FAIL" for m in lines) == 1
    assert {int(m[3]) for m in lines} == set(by_number) == {t.number for t in result.trials}
    # the task's data: a line when it starts and one when it ends, once per process
    assert err.count("data: sqa train/validation/test, 8/4/4 examples") == 2
    assert re.search(r"^data: sqa .*: done in \d+\.\ds$", err, re.M)


def finished(number: int, state: str = "COMPLETE", wall: float = 10.0) -> Finished:
    return Finished(number, config_text("grpo", {"grpo.reward": "rouge1", "seed": 1}), 1, state, "test/bleu=1.00", wall)


def test_n_is_the_study_budget_as_it_grows_and_eta(capsys, monkeypatch) -> None:
    """N is the Optuna study's `total_trials` at each line (rounds of seeds add trials while it runs); ETA =
    remaining x mean trial time / trials running at once."""
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    study = optuna.create_study()
    study.set_user_attr(TOTAL_TRIALS_ATTR, 4)
    display = Display(2, 0, True)  # built with the first round's budget
    running = study.ask()  # this trial: RUNNING in the storage when its line is printed
    display.trial_ended(finished(running.number, wall=10.0), study)
    study.tell(running, 1.0)
    first = trial_lines(capsys.readouterr().err)[0]
    assert (first[1], first[2], first[4], first[5], first[8], first[10]) == (
        "1",
        "4",
        "grpo reward=rouge1",
        "1",
        "10.0s",
        "30.0s",  # 3 left x 10 s / 1 running
    )
    study.set_user_attr(TOTAL_TRIALS_ATTR, 6)  # another round was planned
    a, b = study.ask(), study.ask()  # two trials running at once
    display.trial_ended(finished(a.number, wall=30.0), study)
    second = trial_lines(capsys.readouterr().err)[0]
    assert (second[1], second[2], second[10]) == ("2", "6", "40.0s")  # 4 left x mean 20 s / 2 running
    display.trial_ended(finished(b.number, state="FAIL", wall=1.0), study)
    third = trial_lines(capsys.readouterr().err)[0]
    assert (third[1], third[6]) == ("1", "FAIL")  # `a` is still RUNNING in the storage: only trial 0 counts
    display.close()


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # set_metric_names
def test_parent_of_workers_prints_lines_from_the_storage(capsys, monkeypatch) -> None:
    """`--workers N`: the parent sees only the shared storage; its lines say the same things."""
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    study = optuna.create_study()
    study.set_metric_names(["test/sampled/bleu"])
    study.set_user_attr(TOTAL_TRIALS_ATTR, 3)
    display = Display(3, 0, True)
    reward = CategoricalDistribution(["bleu", "rouge1"])
    seed = CategoricalDistribution([0, 1])
    study.add_trial(
        optuna.trial.create_trial(
            params={"grpo.reward": "rouge1", "seed": 1},
            distributions={"grpo.reward": reward, "seed": seed},
            value=18.834,
            user_attrs={"label": "grpo"},
        )
    )
    study.add_trial(
        optuna.trial.create_trial(
            params={"seed": 0},
            distributions={"seed": seed},
            state=TrialState.FAIL,
            user_attrs={
                "label": "sft",
                "error": "RuntimeError: out of memory",
                PHASES_ATTR: ["data: sqa 8/4/4 examples ...", "data: sqa 8/4/4 examples: done in 1.2s"],
            },
        )
    )
    display.poll(study)
    display.poll(study)  # nothing new: nothing printed again
    err = capsys.readouterr().err
    lines = trial_lines(err)
    assert [(m[1], m[2], m[3], m[4], m[5], m[6], m[7]) for m in lines] == [
        ("1", "3", "0", "grpo reward=rouge1", "1", "COMPLETE", "test/sampled/bleu=18.83"),
        ("1", "3", "1", "sft", "0", "FAIL", "RuntimeError: out of memory"),
    ]
    # a worker's phase lines (its data, the base model's evaluation) reach the parent's terminal, once each
    phases = [line for line in err.splitlines() if line.startswith("trial 1: data")]
    assert phases == ["trial 1: data: sqa 8/4/4 examples ...", "trial 1: data: sqa 8/4/4 examples: done in 1.2s"]
    display.close()


def test_live_bar_on_a_terminal(capsys, monkeypatch) -> None:
    """On a terminal: the bar says `ETA ?` until a trial has ended, and each finished trial's line is printed
    above it."""
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "200")
    study = optuna.create_study()
    study.set_user_attr(TOTAL_TRIALS_ATTR, 2)
    display = Display(2, 0, True)
    assert display.live
    display.progress.refresh()
    before = capsys.readouterr().err
    assert "0/2" in before and "ETA ?" in before
    trial = study.ask()
    display.trial_started(trial.number, "grpo reward=rouge1 seed=1", 2)
    with display.phase("data: sqa"):
        pass
    display.trial_ended(finished(trial.number, wall=5.0), study)
    display.close()
    after = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", capsys.readouterr().err)  # without the terminal's codes
    assert "[1/2] trial 0 grpo reward=rouge1 seed=1 COMPLETE test/bleu=1.00 (5.0s; elapsed" in after
    assert "data: sqa ..." in after and "data: sqa: done in" in after
    assert "1/2" in after and "ETA 5.0s" in after
