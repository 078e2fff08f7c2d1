"""The report's header (title, trials, the commands, commits and machines that ran them) and its setup
(model, data, selection, decoding, metrics, each configuration's settings, statistics, provenance)."""

from __future__ import annotations

import pandas as pd
import yaml

from harness.config import GRPOConfig, TrainConfig
from harness.report.comparisons import ALPHA, N_BOOTSTRAP, POWER, primary_decoding
from harness.report.document import ReportWriter
from harness.report.export import FILES
from harness.report.folder import ReportData
from harness.vocabulary import BASE_EVAL, GRPO, METRIC_NAMES, SELECT_METRIC, STATES

__all__ = ["header_section", "settings_table", "setup_section"]

# The settings every report shows, under short names; any other TrainConfig / GRPOConfig field appears (as
# train.<field> / grpo.<field>) as soon as one configuration sets it away from its default, so a new knob
# shows itself in the Setup of the study that sweeps it.
SHOWN_TRAIN = {
    "steps": "steps",
    "batch_size": "prompts/step",
    "lr": "lr",
    "warmup_steps": "warmup",
    "eval_every": "eval every",
}
SHOWN_GRPO = {
    "reward": "reward",
    "group_size": "G",
    "beta": "beta",
    "temperature": "T (rollout)",
    "max_new_tokens": "new tokens",
    "loss_type": "loss",
    "scale_rewards": "adv. scale",
    "iterations": "mu",
    "mp_grpo": "MP-GRPO",
}


def header_section(w: ReportWriter, data: ReportData, dirty: list[str]) -> None:
    states = data.trials["state"].value_counts().to_dict() if not data.trials.empty else {}
    prov = data.provenance
    title = f"# Study report: {data.name}" + (" (from a dirty tree: not reproducible from a commit)" if dirty else "")
    w.text(
        title,
        "",
        f"- Trials: {len(data.trials)} (" + ", ".join(f"{s} {states.get(s, 0)}" for s in STATES) + f"); "
        f"configurations: {len(data.configs)}; finished trials reused from identical earlier trials: "
        f"{prov.get('reused_trials', 0)}.",
        f"- Run by `{prov.get('command') or 'an unrecorded command'}` at commit(s) "
        f"{', '.join(f'`{c}`' for c in prov.get('trial_commits', []))} "
        f"on {', '.join(prov.get('trial_machines', [])) or 'an unrecorded machine'}.",
        "- Every number below is computed from the files in this folder (`per_seed.csv`, `per_example.csv.gz`, "
        "`curves.csv.gz`, `trials.csv`, `configs/`; `harness report --from-folder` recomputes it); the MLflow run "
        "ids are in [the appendix](#appendix-runs-per-configuration).",
        *([f"- **Not reproducible from a commit:** {'; '.join(dirty)}."] if dirty else []),
    )


def settings_table(configs: dict[str, dict]) -> pd.DataFrame:
    """One row per configuration (its resolved config): the shown training and GRPO settings, then every
    other TrainConfig / GRPOConfig field some configuration sets away from its default (GRPO settings
    "—" for a method that has none)."""
    sections = (("train", TrainConfig, SHOWN_TRAIN), ("grpo", GRPOConfig, SHOWN_GRPO))
    extra: dict[str, list[str]] = {}
    for section, model, shown in sections:
        defaults = model().model_dump(mode="json")
        extra[section] = [
            field
            for field in defaults
            if field not in shown
            and any(
                cfg.get(section, {}).get(field, defaults[field]) != defaults[field]
                for cfg in configs.values()
                if section == "train" or cfg["method"] == GRPO
            )
        ]
    rows = []
    for name, cfg in configs.items():
        row = {"configuration": name, "method": cfg["method"], "seeds": ", ".join(map(str, cfg["seed"]))}
        for section, _, shown in sections:
            values = cfg.get(section, {})
            has = section == "train" or cfg["method"] == GRPO
            for field, label in [*shown.items(), *((f, f"{section}.{f}") for f in extra[section])]:
                if section == "train" and field == "steps" and cfg["method"] == BASE_EVAL:
                    row[label] = 0
                else:
                    value = values.get(field) if has else None
                    row[label] = "—" if value is None else value
        rows.append(row)
    return pd.DataFrame(rows)


def setup_section(w: ReportWriter, data: ReportData) -> None:
    configs = {}
    for path in sorted((data.dir / FILES["configs"]).glob("*.yaml")):
        configs[path.stem] = yaml.safe_load(path.read_text(encoding="utf-8"))
    w.text("## Setup")
    if not configs:
        w.text("No resolved configurations recorded.")
        return
    first = next(iter(configs.values()))
    prov = data.provenance
    params = data.per_seed["model/params"].dropna() if "model/params" in data.per_seed else pd.Series(dtype=float)
    d, e = first["data"], first["eval"]
    w.text(
        f"- **Model**: `{first['model']['name']}`, starting checkpoint "
        + ", ".join(f"`{c}`" for c in prov["checkpoints"])
        + (f", {params.iloc[0] / 1e6:.2f} M parameters" if len(params) else "")
        + f"; trained: `{first['model']['trainable']}` (trainable parameters per configuration in the compute table).",
        f"- **Data**: `{d['source']}`"
        + (f", speech in the `{d['voice']}` voice" if d["source"] == "synthetic" else "")
        + f"; train {d['train_size']}, validation {d['validation_size']}, test {d['test_size']} examples per task "
        f"(data seed {d['seed']}; the training seeds vary the model, not the data).",
        f"- **Selection**: validation every `train.eval_every` steps and at step 0 (greedy, {d['validation_size']} "
        f"examples); the checkpoint with the highest validation corpus {METRIC_NAMES[SELECT_METRIC]} is tested "
        "(step 0 = the starting model). The compute table says how many seeds selected their last evaluation.",
        f"- **Test decoding**: greedy, up to {e['max_new_tokens']} new tokens"
        + (
            f"; and the paper's sampling, top-p {e['top_p']}, temperature {e['temperature']}, "
            f"{e['sampling_passes']} passes scored separately and averaged (`sampled`)"
            if e.get("sampling_passes")
            else ""
        )
        + f"; {e['batch_size']} prompts per batch.",
        "- **Metrics** (x100): BLEU = sacreBLEU corpus BLEU (13a, exp smoothing; a bootstrap re-scores it from "
        "per-sentence statistics); ROUGE-1/2/L = rouge-score F1 with stemming; METEOR = nltk "
        f"({', '.join(prov.get('meteor', []))}); BERTScore = {', '.join(prov.get('bertscore', []))}: not the "
        "paper's roberta-large, so not comparable in level. Other metrics are means of per-example scores.",
    )
    w.text(
        "Per configuration (AdamW, linear warmup then constant lr, gradient norm clipped at "
        f"{first['train']['max_grad_norm']}; resolved configs in `configs/`):"
    )
    w.text_table(settings_table(configs))
    w.text(
        f"- **Statistics**: every comparison is a two-level bootstrap ({data.provenance.get('n_boot', N_BOOTSTRAP):,} "
        "replicates) over "
        "training seeds and test examples (examples paired across the two configurations, seeds resampled "
        "within each, seed variance corrected for small n), with a t reference (Satterthwaite df) for the "
        f"95 % CI and the p-value, and the minimum detectable difference (MDD) at {POWER:.0%} power, "
        f"two-sided alpha {ALPHA} (`harness/report/inference.py`). p-values are Holm-adjusted within two "
        f"families: primary = corpus BLEU under {primary_decoding(data)} decoding, secondary = every other "
        "metric and decoding.",
        "- **Provenance**: study run `"
        + str(prov.get("study_run"))
        + "`; packages: "
        + ", ".join(f"{k} {v}" for k, v in prov.get("versions", {}).items())
        + ".",
    )
