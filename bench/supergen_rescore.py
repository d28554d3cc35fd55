"""Per-phrase generation log-probabilities for samples stored with one per request, by teacher forcing.

Samples written before the writer scored phrases (engine.generate.writer.phrase_logprobs) carry their
request's summed logprob, so SuperGen ranked requests. This re-scores them with the model that
generated them: each unit's prompt is rebuilt exactly as the run's planner built it (card, strategy,
task index, seed; checked against the stored `prompt_hash`), the reply is rebuilt from the unit's
stored phrases as the grammar writes a list (`["a", "b"]`), prompt + reply is evaluated in one pass,
and every reply token's log-probability is read from the raw logits (no grammar, no temperature: what
the in-process backends store). Each phrase gets the sum over the reply tokens that overlap it, and
their count, exactly as the writer now does for a new run.

What the rebuilt reply cannot restore: phrases the writer dropped (duplicates of earlier samples, over
the quota) are missing from it, the separator is ", " where the model may have written ",", and the
tokens are the tokenizer's own split of the text, where the sampler may have spelled a word in other
tokens. So a phrase's score is conditioned on the stored phrases before it, not on every phrase the
model wrote. The request-level teacher-forced logprob per token is compared with the stored one
(`agreement` in the log and the result file's settings key) as a check of how close the rebuild is.

Works on a COPY (`--out`); the input file is never written. Resumable: samples that already have a
per-phrase count are skipped.

    python -m bench.supergen_rescore --project bench/projects/nace-10-11.statcoder --run-id 1 --run-id 2 \\
        --out bench/work/nace-10-11-phrase.statcoder --model /path/to/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from engine.generate.runs import grammar_for, make_request, plan_for_code, run_settings
from engine.generate.strategies import make_task, unit_seed
from engine.generate.writer import phrase_logprobs
from engine.llm.base import BackendSettings, Completion, HardwareSettings
from engine.llm.sampling import completion_bytes
from engine.store.project import Project


def _log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


class TeacherForcer:
    """The run's model in-process; `score(prompt, reply)` -> per reply token (raw-logit) logprobs.

    The KV cache keeps the longest common prefix with the previous sequence (the code's card), so a
    code's prefix is evaluated once."""

    def __init__(self, model_path: str, *, threads: int, n_ctx: int):
        import llama_cpp

        from engine.llm.llamacpp import LlamaCppBackend

        self.c = llama_cpp
        self.backend = LlamaCppBackend(BackendSettings(model_path=model_path, hardware=HardwareSettings(
            threads=threads, n_ctx=n_ctx, parallel=1)))
        self.llm = self.backend.llm
        self.ctx = self.llm._ctx.ctx
        self.n_vocab = self.llm.n_vocab()
        self.n_batch = 512
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self.cached: list[int] = []
        self.evaluated = 0

    def tokens_for(self, prompt) -> list[int]:
        return self.backend.tokens_for(prompt)

    def score(self, prompt_tokens: list[int], reply: str) -> tuple[list[int], list[float]]:
        reply_tokens = self.llm.tokenize(reply.encode("utf-8"), add_bos=False, special=False)
        full = prompt_tokens + reply_tokens
        first = len(prompt_tokens) - 1          # the position whose logits predict the first reply token
        keep = 0
        for a, b in zip(self.cached, full):
            if a != b:
                break
            keep += 1
        keep = min(keep, first)
        mem = self.c.llama_get_memory(self.ctx)
        self.c.llama_memory_seq_rm(mem, 0, keep, -1)
        self.cached = full[:keep]
        logprobs: list[float] = []
        for chunk in range(keep, len(full), self.n_batch):
            stop = min(chunk + self.n_batch, len(full))
            b = self.batch
            b.n_tokens = stop - chunk
            for i, pos in enumerate(range(chunk, stop)):
                b.token[i] = full[pos]
                b.pos[i] = pos
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = 0
                b.logits[i] = first <= pos < len(full) - 1
            rc = self.c.llama_decode(self.ctx, b)
            if rc != 0:
                raise RuntimeError(f"llama_decode failed ({rc})")
            self.evaluated += stop - chunk
            for i, pos in enumerate(range(chunk, stop)):
                if first <= pos < len(full) - 1:
                    logits = np.ctypeslib.as_array(self.c.llama_get_logits_ith(self.ctx, i),
                                                   shape=(self.n_vocab,)).astype(np.float64)
                    top = logits.max()
                    logprobs.append(float(logits[full[pos + 1]] - top - np.log(np.exp(logits - top).sum())))
        self.cached = full
        return reply_tokens, logprobs

    def close(self) -> None:
        self.c.llama_batch_free(self.batch)
        self.backend.close()


def rebuild_reply(phrases: list[str]) -> str:
    """The list as the phrase-list grammar writes it, the separator with its optional space."""
    return json.dumps(phrases, ensure_ascii=False)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--run-id", type=int, action="append", required=True)
    parser.add_argument("--out", required=True, help="The copy to write (created from --project if absent).")
    parser.add_argument("--model", required=True, help="The GGUF the runs were generated with (sha256 checked).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--check-only", action="store_true", help="Rebuild the prompts, compare hashes, stop.")
    parser.add_argument("--limit", type=int, default=0, help="Stop after this many units (timing estimates).")
    parser.add_argument("--name", default="", help="Also write bench/results/NAME.{json,md}: the copy's rescoring "
                        "summaries and the mean per-phrase score by position in the reply.")
    args = parser.parse_args(argv)

    source, out = Path(args.project).resolve(), Path(args.out).resolve()
    if source == out:
        raise SystemExit("--out must be another file than --project")
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, out)
        _log(f"copied {source} to {out}")
    from engine.llm.registry import inspect_model

    info = inspect_model(Path(args.model))
    with Project.open(out) as project:
        classification = (project.get_setting("classification", {}) or {}).get("name", "classification")
        forcer = None if args.check_only else TeacherForcer(args.model, threads=args.threads, n_ctx=args.n_ctx)
        kind = forcer.backend.prompt_kind if forcer else (info.prompt_kind or "chat")
        totals = defaultdict(int)
        agreement: list[tuple[float, float]] = []
        started = time.time()
        for run_id in args.run_id:
            row = dict(zip(["seed", "quota", "strategies", "sha"], project.conn.execute(
                "SELECT seed, quota, strategies, model_sha256 FROM generation_runs WHERE id = ?", (run_id,)).fetchone()))
            if row["sha"] != info.sha256:
                raise SystemExit(f"run {run_id} was generated with {row['sha']}, not {info.sha256} ({args.model})")
            _, params = run_settings(project, run_id)
            grammar, schema = grammar_for(params, "grammar")
            units: dict[str, list[tuple]] = defaultdict(list)
            for sid, unit, code, strategy, seed, phash, text, lp, ct, done in project.conn.execute(
                    "SELECT id, unit, code, strategy, seed, prompt_hash, text, logprob, completion_tokens,"
                    " logprob_tokens FROM samples WHERE run_id = ? ORDER BY id", (run_id,)):
                units[unit].append((sid, code, strategy, seed, phash, text, lp, ct, done))
            plans: dict[str, tuple] = {}
            strategies = json.loads(row["strategies"])
            order = sorted(units, key=lambda u: units[u][0][0])
            _log(f"run {run_id}: {len(order)} units, {sum(len(v) for v in units.values())} samples")
            for n, unit in enumerate(order, 1):
                rows = units[unit]
                code, strategy, index = unit.split("|")
                sid0, code0, strategy0, seed, phash = rows[0][:5]
                assert code == code0 and strategy == strategy0
                if code not in plans:
                    plans.clear()
                    plans[code] = plan_for_code(project, code, strategies, row["quota"], params, row["seed"])
                card, ctx, _ = plans[code]
                want_seed = unit_seed(row["seed"], unit)
                task = make_task(strategy, card, int(index), want_seed, ctx)
                request = make_request(card, task, params=params, classification=classification, kind=kind,
                                       seed=want_seed, grammar=grammar, schema=schema)
                totals["units"] += 1
                if want_seed != seed or request.prompt.hash() != phash:
                    totals["hash_mismatch"] += 1
                    if totals["hash_mismatch"] <= 5:
                        _log(f"MISMATCH {unit}: seed {seed} vs {want_seed}, hash {phash} vs {request.prompt.hash()}")
                    continue
                totals["hash_ok"] += 1
                if forcer is None or all(r[8] is not None for r in rows):
                    continue
                phrases = [r[5] for r in rows]
                reply = rebuild_reply(phrases)
                tokens, logprobs = forcer.score(forcer.tokens_for(request.prompt), reply)
                raw, per_token = completion_bytes(forcer.llm.detokenize, tokens, logprobs)
                completion = Completion(text=raw.decode("utf-8", errors="replace"), prompt_tokens=0,
                                        completion_tokens=len(tokens), logprob=sum(logprobs),
                                        token_logprobs=per_token)
                scores = phrase_logprobs(completion, phrases)
                updates = []
                for sid, *_rest in rows:
                    text = _rest[4]
                    lp, count = scores[text]
                    if count is None:
                        totals["not_found"] += 1
                        continue
                    updates.append((lp, count, sid))
                with project.transaction() as conn:
                    conn.executemany("UPDATE samples SET logprob = ?, logprob_tokens = ? WHERE id = ?", updates)
                totals["samples"] += len(updates)
                if rows[0][6] is not None and rows[0][7]:
                    agreement.append((rows[0][6] / rows[0][7], sum(logprobs) / max(1, len(logprobs))))
                if n % 20 == 0 or n == len(order):
                    elapsed = time.time() - started
                    _log(f"run {run_id}: {n}/{len(order)} units, {totals['samples']} samples rescored, "
                         f"{forcer.evaluated} tokens evaluated, {elapsed:.0f}s")
                if args.limit and totals["units"] >= args.limit:
                    break
        summary = {"units": totals["units"], "prompt_hash_ok": totals["hash_ok"],
                   "prompt_hash_mismatch": totals["hash_mismatch"], "samples_rescored": totals["samples"],
                   "phrases_not_found": totals["not_found"], "seconds": round(time.time() - started, 1),
                   "model_sha256": info.sha256, "source": str(source), "run_ids": args.run_id,
                   "command": " ".join(["python", "-m", "bench.supergen_rescore", *(argv or sys.argv[1:])])}
        if agreement:
            stored, forced = np.array(agreement).T
            summary["request_logprob_per_token"] = {
                "stored_mean": round(float(stored.mean()), 4), "teacher_forced_mean": round(float(forced.mean()), 4),
                "pearson": round(float(np.corrcoef(stored, forced)[0, 1]), 4) if len(stored) > 2 else None,
                "requests": len(stored)}
        if forcer is not None:
            previous = project.get_setting("bench.supergen_rescore", []) or []
            if totals["samples"]:
                project.set_setting("bench.supergen_rescore", [*previous, summary])
            forcer.close()
        _log(json.dumps(summary))
        if args.name:
            _report(project, args, out, summary)


def _report(project: Project, args, out: Path, summary: dict) -> None:
    """The copy's rescoring summaries, and the mean per-phrase score by the phrase's place in its reply."""
    from .common import command_line, now, write_result

    by_unit: dict[tuple, list[float]] = defaultdict(list)
    marks = ",".join("?" * len(args.run_id))
    for run_id, unit, lp, n in project.conn.execute(
            f"SELECT run_id, unit, logprob, logprob_tokens FROM samples WHERE run_id IN ({marks})"
            " AND logprob_tokens IS NOT NULL ORDER BY id", args.run_id):
        by_unit[(run_id, unit)].append(lp / n)
    positions: dict[int, list[float]] = defaultdict(list)
    for scores in by_unit.values():
        for k, v in enumerate(scores):
            positions[k].append(v)
    values = np.array([v for s in by_unit.values() for v in s]) if by_unit else np.zeros(0)
    within = np.array([v - np.mean(s) for s in by_unit.values() for v in s]) if by_unit else np.zeros(0)
    data = {"command": command_line("bench.supergen_rescore"), "created": now(), "project": str(out),
            "run_ids": args.run_id, "rescoring": project.get_setting("bench.supergen_rescore", []) or [summary],
            "phrase_score_by_position": {k + 1: {"n": len(v), "mean": round(float(np.mean(v)), 4)}
                                         for k, v in sorted(positions.items())},
            "variance_total": round(float(values.var()), 4) if len(values) else None,
            "variance_within_request": round(float(within.var()), 4) if len(within) else None}
    runs = data["rescoring"]
    lines = ["# Per-phrase generation logprobs by teacher forcing", "", f"`{data['command']}`", "",
             "| units | prompt hash matches | samples re-scored | phrases not found | seconds |", "|---|---|---|---|---|"]
    lines += [f"| {r['units']} | {r['prompt_hash_ok']} | {r['samples_rescored']} | {r['phrases_not_found']} "
              f"| {r['seconds']} |" for r in runs]
    for r in runs:
        agreement = r.get("request_logprob_per_token")
        if agreement:
            lines += ["", f"Request logprob per token, stored (sampled reply) {agreement['stored_mean']} against "
                      f"teacher-forced (rebuilt reply) {agreement['teacher_forced_mean']}; Pearson "
                      f"{agreement['pearson']} over {agreement['requests']} requests."]
    lines += ["", "Mean logprob per token of a phrase by its place in the reply (the model grows surer along a list):",
              "", "| place | phrases | mean |", "|---|---|---|"]
    lines += [f"| {k} | {v['n']} | {v['mean']} |" for k, v in data["phrase_score_by_position"].items()]
    lines += ["", f"Variance of the per-phrase score: {data['variance_total']} in all, "
              f"{data['variance_within_request']} within requests (what per-request scores could not see)."]
    write_result(args.name, data, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
