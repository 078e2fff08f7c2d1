#!/usr/bin/env bash
# Wheels for bench/gpu_check.sh, downloaded here into bench/.wheels (git-ignored) and carried to the
# device machine, which cannot reach a package index. That machine has python 3.12 with torch,
# transformers 5.17, peft, accelerate and sacrebleu (and their dependencies); the harness needs,
# on top (see its imports):
#   transformers 5.24   5.17 names the KV cache `past_key_values`; SpeechLM passes and reads `cache`
#   mlflow-skinny + sqlalchemy + alembic, optuna, pandas   tracking (sqlite store, sample tables), sweeps
#   soundfile, nltk, rouge-score, pydantic, pyyaml, psutil, typer, rich   data, metrics, config, CLI
# Not carried: bert-score and its MiniLM weights (eval.bertscore is off in the check), scipy (clips
# are 16 kHz already), full mlflow (its server/UI deps), trl (+ datasets + pyarrow, ~55 MB: beyond
# the carry limit with the above). Wheels of what the device already has (torch's, transformers',
# huggingface_hub's, sacrebleu's dependencies) are dropped; pip on the device resolves against what
# is installed plus these, and bench/gpu_check.sh skips the end-to-end part if that fails.
#
#   bash bench/gpu_wheels.sh            # -> bench/.wheels, prints the total size (limit: 64 MiB carried)
set -euo pipefail
cd "$(dirname "$0")"
OUT=.wheels
PIP=${PIP:-python3 -m pip}
REQUIREMENTS=(
  "transformers==5.24.0" "huggingface-hub>=1.31,<2" "mlflow-skinny==3.17.2" "optuna==5.0.0" "sqlalchemy>=2" "alembic"
  "pandas>=2.2" "soundfile>=0.12" "nltk>=3.9" "rouge-score==0.1.2" "pydantic>=2.7" "pyyaml" "psutil" "typer" "rich"
)
# on the device already (torch / transformers 5.17 / huggingface_hub 1.x / peft / accelerate / sacrebleu)
PRESENT="torch triton nvidia numpy sympy mpmath networkx jinja2 markupsafe filelock fsspec setuptools
  typing_extensions packaging regex tokenizers safetensors tqdm huggingface_hub hf_xet httpx httpcore h11 anyio
  sniffio certifi idna click typer shellingham rich pygments markdown_it_py mdurl accelerate peft psutil pyyaml
  sacrebleu portalocker tabulate colorama lxml requests urllib3 charset_normalizer"
rm -rf "$OUT" && mkdir -p "$OUT"
# rouge-score publishes a source archive only: build its (pure-python) wheel here
$PIP wheel -q --no-deps -w "$OUT" "rouge-score==0.1.2"
$PIP download -q -d "$OUT" --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any --find-links "$OUT" "${REQUIREMENTS[@]}"
for wheel in "$OUT"/*.whl; do
  name=$(basename "$wheel" | cut -d- -f1 | tr '[:upper:]' '[:lower:]')
  keep=1
  for present in $PRESENT; do
    [[ "$name" == "$present" || "$name" == "$present"_* || ( "$present" == nvidia && "$name" == nvidia_* ) ]] && keep=0
  done
  case "$name" in transformers|huggingface_hub) keep=1 ;; esac  # newer than the device's, needed
  [[ $keep == 1 ]] || rm "$wheel"
done
printf '%s\n' "${REQUIREMENTS[@]}" > "$OUT/requirements.txt"
du -sh "$OUT"
ls "$OUT"
