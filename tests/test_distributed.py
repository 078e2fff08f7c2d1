"""Data-parallel training on CPU with torch.distributed's gloo backend (the code path NCCL takes on
GPUs): two ranks with different batches end with identical weights, equal to one process stepping
on the mean of the two gradients; sharded greedy evaluation equals one process's; and `harness
trial` runs under torchrun."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from fakes import SMALL_SPEC
from servers import free_port

from harness.config import EvalConfig
from harness.data.dataset import SpokenSet
from harness.eval.evaluate import greedy_and_nll
from harness.models.features import log_mel
from harness.models.speech_lm import SpeechLM
from harness.models.tiny import build_tiny, train_tokenizer

SPEC = SMALL_SPEC
ANSWERS = [["die katze schläft", "wir gehen"], ["er liest ein buch", "sie singt"]]


def _model():
    tok = train_tokenizer([a for pair in ANSWERS for a in pair] * 5 + ["listen to the speech"], SPEC.vocab_size)
    torch.manual_seed(0)
    return SpeechLM(build_tiny(SPEC, tok), tok)


def _batch(lm, rank):
    rng = np.random.RandomState(rank)
    feats = [log_mel(rng.randn(16000).astype(np.float32) * 0.1) for _ in range(2)]
    return lm.prepare(["<|audio|> listen to the speech"] * 2, feats), ANSWERS[rank]


EVAL = EvalConfig(max_new_tokens=5, batch_size=1, bertscore=False)


def _eval_set() -> SpokenSet:
    rng = np.random.RandomState(7)
    examples = [SimpleNamespace(prompt="<|audio|> listen to the speech", answer=a) for a in ANSWERS[0] + ANSWERS[1][:1]]
    return SpokenSet(examples, [log_mel(rng.randn(12000 + 2000 * i).astype(np.float32) * 0.1) for i in range(3)])


def _sgd(lm):
    opt = torch.optim.SGD([p for p in lm.model.parameters() if p.requires_grad], lr=1e-2)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


def _rank(rank: int, size: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    from harness import distributed
    from harness.train.learner import Learner
    from harness.train.sft import sft_step

    w = distributed.init()
    assert (w.rank, w.size) == (rank, size)
    lm = _model()
    lm.model.eval()
    hyps, nll = greedy_and_nll(lm, _eval_set(), EVAL)  # sharded: rank 0 decodes examples 0, 2; rank 1 example 1
    torch.save({"hyps": hyps, "nll": nll}, Path(out) / f"eval{rank}.pt")
    opt, sched = _sgd(lm)
    prompts, answers = _batch(lm, rank)
    sft_step(Learner(lm, opt, sched, max_grad_norm=1e9), prompts, answers)
    torch.save({n: p.detach() for n, p in lm.model.named_parameters()}, Path(out) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_two_ranks_step_on_the_mean_gradient(tmp_path):
    mp.spawn(_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    # sharded greedy evaluation: both ranks hold the hypotheses of one process, in order, and its NLL
    single = _model()
    single.model.eval()
    hyps, nll = greedy_and_nll(single, _eval_set(), EVAL)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"eval{rank}.pt")
        assert got["hyps"] == hyps and len(hyps) == 3
        assert got["nll"] == pytest.approx(nll, rel=1e-5)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for name in r0:
        torch.testing.assert_close(r0[name], r1[name], atol=0, rtol=0)

    # one process: mean of the two ranks' gradients, then the same SGD step (SGD, not Adam: Adam
    # turns a rounding-level gradient difference into an lr-sized step where the gradient is near 0)
    from harness.eval.evaluate import reference_nll

    lm = _model()
    lm.model.eval()
    grads = []
    for rank in (0, 1):
        lm.model.zero_grad(set_to_none=True)
        prompts, answers = _batch(lm, rank)
        reference_nll(lm, prompts, answers)[0].backward()
        grads.append({n: p.grad.clone() for n, p in lm.model.named_parameters() if p.grad is not None})
    opt, _ = _sgd(lm)
    assert grads[0].keys() == grads[1].keys()
    lm.model.zero_grad(set_to_none=True)
    for n, p in lm.model.named_parameters():
        if n in grads[0]:
            p.grad = (grads[0][n] + grads[1][n]) / 2
    opt.step()
    for n, p in lm.model.named_parameters():
        torch.testing.assert_close(r0[n], p.detach(), atol=1e-6, rtol=1e-5)
    moved = sum(float((r0[n] - p).abs().sum()) for n, p in _model().model.named_parameters())
    assert moved > 0


@pytest.mark.slow
def test_harness_trial_under_torchrun(tmp_path):
    from test_real_data import make_covost2

    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.exists() and shutil.which("torchrun") is None:
        pytest.skip("torchrun not installed")
    tsv = make_covost2(tmp_path)
    cfg = tmp_path / "trial.yaml"
    cfg.write_text(
        f"task: ast\nmethod: sft\ndata: {{source: {tsv}, train_size: 3, validation_size: 1, test_size: 1}}\n"
        "train: {steps: 2, batch_size: 2, eval_every: 2, warmup_steps: 0}\n"
        "eval: {bertscore: false, max_new_tokens: 4, batch_size: 2}\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", HARNESS_TORCH_THREADS="1")
    proc = subprocess.run(
        [
            str(torchrun if torchrun.exists() else "torchrun"),
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
            "-m",
            "harness.cli",
            "trial",
            str(cfg),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=Path(__file__).parents[1],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("best_step") == 1  # rank 0 prints the result, rank 1 does not
    assert "test/bleu" in proc.stdout


def _collectives(rank: int, size: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    from harness import distributed
    from harness.config import GRPOConfig
    from harness.train.grpo_loss import chunk_weight, tokens_per_process

    distributed.init()
    tokens = [5.0, 11.0][rank]  # this rank's completion tokens
    mask = torch.ones(1, int(tokens))
    dapo, bnpo = GRPOConfig(loss_type="dapo"), GRPOConfig(loss_type="bnpo")
    per_process = tokens_per_process(dapo, mask)  # the mean of the ranks' token counts
    result = {
        "mean": per_process,
        "any_short": distributed.any_process(rank == 1),
        "none_short": distributed.any_process(False),
        "bnpo_count": tokens_per_process(bnpo, mask),  # None: bnpo counts this rank's tokens only
        "dapo": chunk_weight(dapo, mask, mask, per_process),
        "bnpo": chunk_weight(bnpo, mask, mask, per_process),
    }
    torch.save(result, Path(out) / f"collectives{rank}.pt")
    torch.distributed.destroy_process_group()


def test_loss_collectives_over_two_ranks(tmp_path):
    """dapo's normaliser counts both ranks' tokens (after gradient averaging: global sum / global
    tokens); bnpo each rank's own; dynamic sampling's 'any rank short' is the same on every rank."""
    mp.spawn(_collectives, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"collectives{r}.pt") for r in (0, 1))
    assert r0["mean"] == r1["mean"] == 8.0 and r0["bnpo_count"] is None is r1["bnpo_count"]
    assert r0["any_short"] and r1["any_short"] and not r0["none_short"] and not r1["none_short"]
    # rank r's loss = its token sum x dapo weight / its tokens; the mean over ranks = (sum_0 + sum_1) / 16
    assert (r0["dapo"], r1["dapo"]) == (5 / 8, 11 / 8)
    assert (r0["bnpo"], r1["bnpo"]) == (1.0, 1.0)
