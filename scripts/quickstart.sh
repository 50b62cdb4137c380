#!/usr/bin/env bash
# Fresh machine → an index of the bundled AWS pages and a first grounded answer (embedded default:
# local Qdrant under .citedesk/, CPU embeddings, extractive answers, no LLM needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export HF_HUB_OFFLINE=1
citedesk sync --path data/aws-docs
citedesk ask "What is the size of a null attribute in DynamoDB?"
citedesk ask "How do I bake sourdough bread?"
