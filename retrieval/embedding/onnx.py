"""ONNX Runtime adapter: a sentence-transformers model exported to ONNX once, then run without torch.

The only module that imports ``onnxruntime`` and ``tokenizers``. The export (``torch.onnx``, from the local model
files, no network) happens on first use and is cached under ``<cache_dir>/<model>-<key>/``: ``model.onnx`` (fp32:
the same vectors as torch within float error, so an index built with torch stays valid) and, for
``quantize=True``, ``model_int8.onnx`` (dynamic int8 quantization; MatMul weights per channel, ≈ 1.4× fp32 on an AVX2 CPU, cosine to torch ≥ 0.98, so its
vectors count as another model: see :attr:`OnnxEmbedder.model_name`). Running needs only onnxruntime and the
tokenizers library, which import in a fraction of a second, where torch + transformers take several: that is
what makes a cold ``citedesk ask`` fast.

Supports the sentence-transformers layout ``Transformer → Pooling (mean | cls) → Normalize`` (all-MiniLM-L6-v2,
bge, e5...), and cross-encoders (``AutoModelForSequenceClassification``: :class:`OnnxCrossEncoderReaderModel`).
Not thread-safe to load; loading happens once under a lock in ``warm_up()``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np
from citedesk.retrieval.embedding.dense import (
    CrossEncoderReaderModel,
    _LazyModel,
    label_probabilities,
    resolve_model_path,
)

log = logging.getLogger(__name__)

__all__ = ["OnnxCrossEncoderReaderModel", "OnnxEmbedder", "export_onnx"]


def _cache_key(model_dir: Path) -> str:
    """Changes when the model's weights or config change (sizes and mtimes of its files)."""
    h = hashlib.sha256()
    for p in sorted(model_dir.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            st = p.stat()
            h.update(f"{p.relative_to(model_dir)}|{st.st_size}|{int(st.st_mtime)}".encode())
    return h.hexdigest()[:12]


def export_onnx(model_dir: Path, out_dir: Path, *, quantize: bool, head: str = "hidden") -> Path:
    """Export the transformer of a local sentence-transformers model to ONNX (once; a no-op when cached).

    Args:
        model_dir: local model folder (``config.json``, weights, ``tokenizer.json``).
        out_dir: cache folder for this model.
        quantize: also write the dynamic-int8 ``model_int8.onnx`` and return it.
        head: ``hidden`` (an embedder: output ``last_hidden_state`` (batch, tokens, dim)) or ``logits`` (a
            cross-encoder, ``AutoModelForSequenceClassification``: output ``logits`` (batch, labels)); weights
            stored in float16 are exported in float32.

    Returns:
        Path of the ``.onnx`` file to run.

    Raises:
        ValueError: the folder has no ``tokenizer.json`` (a fast tokenizer is needed to run without transformers).
    """
    fp32 = out_dir / "model.onnx"
    target = out_dir / "model_int8.onnx" if quantize else fp32
    if target.is_file():
        return target
    if not (model_dir / "tokenizer.json").is_file():
        raise ValueError(f"{model_dir} has no tokenizer.json; the onnx backend needs a fast tokenizer")
    out_dir.mkdir(parents=True, exist_ok=True)
    if not fp32.is_file():
        import torch
        from transformers import AutoModel, AutoModelForSequenceClassification

        log.info("exporting %s to ONNX under %s (once)", model_dir, out_dir)
        auto = AutoModelForSequenceClassification if head == "logits" else AutoModel
        model = auto.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        typed = "token_type_ids" in inspect.signature(model.forward).parameters
        names = ["input_ids", "attention_mask"] + (["token_type_ids"] if typed else [])
        output = "logits" if head == "logits" else "last_hidden_state"

        class Encoder(torch.nn.Module):  # explicit positional inputs: what the TorchScript exporter traces
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *args):
                return getattr(self.model(**dict(zip(names, args))), output)

        ids = torch.ones((2, 16), dtype=torch.long)
        sample = (ids, torch.ones_like(ids), torch.zeros_like(ids))[:len(names)]
        axes = {n: {0: "batch", 1: "tokens"} for n in names}
        tmp = out_dir / f"model.{os.getpid()}.onnx.tmp"
        with torch.no_grad():
            out_axes = {0: "batch"} if head == "logits" else {0: "batch", 1: "tokens"}
            torch.onnx.export(Encoder().eval(), sample, str(tmp), input_names=names, output_names=[output],
                              dynamic_axes={**axes, output: out_axes}, opset_version=17, dynamo=False)
        os.replace(tmp, fp32)
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = out_dir / f"model_int8.{os.getpid()}.onnx.tmp"
        # MatMul weights only, per output channel: min cosine to torch 0.987 on AWS pages (all ops: 0.905)
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])
        os.replace(tmp, target)
    return target


def _open(path: Path, model_dir: Path, max_length: int, threads: int | None):
    """(onnxruntime session on the CPU, its input names, the model's fast tokenizer truncating longest-first to
    ``max_length`` tokens and not padding: batches are padded by the caller)."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(max_length=max_length, strategy="longest_first")
    tok.no_padding()  # tokenizer.json may pad to a fixed length
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return session, {i.name for i in session.get_inputs()}, tok


def _padded(enc: list) -> dict[str, np.ndarray]:
    """Tokenized texts or pairs → int64 (n, longest) ``input_ids``, ``attention_mask`` and ``token_type_ids``
    (the second text of a pair is type 1), zero-padded."""
    width = max(len(e.ids) for e in enc)
    feeds = {n: np.zeros((len(enc), width), dtype=np.int64) for n in ("input_ids", "attention_mask", "token_type_ids")}
    for r, e in enumerate(enc):
        feeds["input_ids"][r, : len(e.ids)] = e.ids
        feeds["attention_mask"][r, : len(e.ids)] = 1
        feeds["token_type_ids"][r, : len(e.ids)] = e.type_ids
    return feeds


class OnnxEmbedder:
    """Dense text embedder running an ONNX export of a sentence-transformers model with onnxruntime.

    Same interface as :class:`~citedesk.retrieval.embedding.dense.SentenceEmbedder` (``embed``, ``embed_query``,
    ``dim``, ``model_name``, ``warm_up``).

    Args:
        model: the ``embedding.model`` setting (resolved to a local folder; a hub name must be in the local cache).
        cache_dir: where exports are kept (``<data_dir>/onnx``).
        quantize: run the int8 export (changes ``model_name``: its vectors differ slightly from torch's).
        batch_size: at most this many texts per run (texts are sorted by token count).
        max_padding: a batch's padded size (texts × longest) is at most this multiple of its real tokens.
        batch_tokens: a batch's padded size is at most this many tokens (one text longer than that runs alone).
        max_seq_length: tokens (default: the model's ``sentence_bert_config.json`` value, else 512).
        threads: onnxruntime intra-op threads (None: its default, all cores).
    """

    def __init__(self, model: str, *, cache_dir: Path, quantize: bool = False, batch_size: int = 64,
                 max_seq_length: int | None = None, threads: int | None = None, max_padding: float = 1.3,
                 batch_tokens: int = 2048) -> None:
        self.setting = model
        self.batch_tokens = batch_tokens
        self.max_padding = max_padding
        self.model_name = model + ("#onnx-int8" if quantize else "")
        self.cache_dir = Path(cache_dir)
        self.quantize = quantize
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.threads = threads
        self.device = "cpu (onnxruntime)"
        self._session = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Export once (cached), then load the session and tokenizer (idempotent, thread-safe)."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is None:
                self._load()

    def _load(self) -> None:
        model_dir = Path(resolve_model_path(self.setting))
        if not model_dir.is_dir():
            raise ValueError(f"embedding.backend=onnx needs local model files; {self.setting!r} is not a folder")
        name = model_dir.parent.name if model_dir.name == "model" else model_dir.name
        path = export_onnx(model_dir, self.cache_dir / f"{name}-{_cache_key(model_dir)}", quantize=self.quantize)
        cfg = model_dir / "sentence_bert_config.json"
        max_len = self.max_seq_length or (json.loads(cfg.read_text()).get("max_seq_length") if cfg.is_file() else None) \
            or 512
        pooling = model_dir / "1_Pooling" / "config.json"
        self._cls = bool(pooling.is_file() and json.loads(pooling.read_text()).get("pooling_mode_cls_token"))
        session, self._inputs, self._tokenizer = _open(path, model_dir, int(max_len), self.threads)
        self._dim = int(json.loads((model_dir / "config.json").read_text())["hidden_size"])
        self._session = session
        log.info("onnx embedding model %s loaded (%s)", path, "int8" if self.quantize else "fp32")

    @property
    def dim(self) -> int:
        """Embedding dimension (e.g. 384)."""
        self.warm_up()
        return self._dim

    def _run(self, enc: list) -> np.ndarray:
        """Run one batch of tokenized texts (padded here to the batch's longest): float32 (n, dim), L2-normalised."""
        feeds = _padded(enc)
        mask = feeds["attention_mask"]
        hidden = self._session.run(["last_hidden_state"], {k: v for k, v in feeds.items() if k in self._inputs})[0]
        if self._cls:
            pooled = hidden[:, 0]
        else:
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed texts: float32 (n, dim), L2-normalised.

        Texts are tokenized once and sorted by token count; a batch ends at ``batch_size`` texts, at
        ``batch_tokens`` padded tokens, or where padding to its longest text would run more than ``max_padding``
        times its real tokens. Texts of mixed lengths (answer units: 5 to 250 tokens) are so not padded to the
        longest of them, and small batches run faster per token on a CPU (measured on 2 cores: 2,048 padded
        tokens per run ≈ 1.15× the texts/s of 64 × 256).
        """
        self.warm_up()
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        if not texts:
            return out
        enc = self._tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in enc]
        batch: list[int] = []
        real = 0  # tokens of the batch's texts, unpadded
        for i in sorted(range(len(texts)), key=lengths.__getitem__, reverse=True):
            if batch:
                padded = lengths[batch[0]] * (len(batch) + 1)  # the batch with text i, padded to its longest
                if (len(batch) >= self.batch_size or padded > self.batch_tokens
                        or padded > self.max_padding * (real + lengths[i])):
                    out[batch] = self._run([enc[j] for j in batch])
                    batch, real = [], 0
            batch.append(i)
            real += lengths[i]
        out[batch] = self._run([enc[j] for j in batch])
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query: float32 (dim,), L2-normalised."""
        return self.embed([text])[0]


class OnnxCrossEncoderReaderModel(_LazyModel):
    """The cross-encoder reader (:class:`~citedesk.retrieval.embedding.dense.CrossEncoderReaderModel`'s protocol:
    ``score_units``, ``SCORE_KIND``) run as an fp32 ONNX export by onnxruntime, without torch.

    The export (once, cached under ``<cache_dir>/<model>-<key>/``) gives the same probabilities as torch within
    float error, so the confidence weights fitted with torch hold. Pairs are tokenized by the model's
    ``tokenizer.json`` with longest-first truncation to ``max_length``, as sentence-transformers does.

    Args:
        model: the setting ``answer.reader_model`` (a local folder or ``package:<module>``).
        cache_dir: where exports are kept (``<data_dir>/onnx``).
        max_length: tokens of a (question, unit) pair.
        threads: onnxruntime intra-op threads (None: all cores).
    """

    SETTING = CrossEncoderReaderModel.SETTING
    SCORE_KIND = CrossEncoderReaderModel.SCORE_KIND
    NO_UNIT_SCORE = CrossEncoderReaderModel.NO_UNIT_SCORE

    def __init__(self, model: str, *, cache_dir: Path, max_length: int = 128, threads: int | None = None) -> None:
        super().__init__(model, "cpu")
        self.cache_dir = Path(cache_dir)
        self.max_length = max_length
        self.threads = threads

    def warm_up(self) -> None:
        """Export once (cached), then load the session and tokenizer (idempotent, thread-safe).

        Raises:
            ConfigError: the model cannot be exported or loaded; the message names ``answer.reader_model``.
        """
        self._warm_up_or_config_error("answer.reader_kind=cross_encoder needs a folder with a sentence-transformers "
                                      "CrossEncoder and its tokenizer.json")

    def _load(self, path: str, device: str):
        """(session, its input names, tokenizer) of the export of the model folder ``path`` (exported once)."""
        model_dir = Path(path)
        if not model_dir.is_dir():
            raise ValueError(f"{self.model_name!r} is not a folder")
        onnx_path = export_onnx(model_dir, self.cache_dir / f"{model_dir.name}-{_cache_key(model_dir)}",
                                quantize=False, head="logits")
        loaded = _open(onnx_path, model_dir, self.max_length, self.threads)
        log.info("onnx cross-encoder reader %s loaded", onnx_path)
        return loaded

    def score_units(self, question: str, units: list[str]) -> np.ndarray:
        """float64 (n,): the probability (kind :data:`SCORE_KIND`) that each unit answers ``question`` (a sigmoid
        of a one-output model, else the softmax at index 1).

        Raises:
            ConfigError: the model cannot be loaded (see :meth:`warm_up`).
        """
        self.warm_up()
        if not units:
            return np.zeros((0,), dtype=np.float64)
        session, inputs, tokenizer = self._model
        feeds = _padded(tokenizer.encode_batch([(question, u) for u in units]))
        logits = session.run(["logits"], {k: v for k, v in feeds.items() if k in inputs})[0]
        return label_probabilities(logits, 1)
