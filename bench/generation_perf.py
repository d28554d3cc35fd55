"""Protocol P, generation efficiency: samples/s, pipeline vs raw llama.cpp decode tokens/s, and prompt
tokens per sample with and without prefix (KV) reuse, for the default model on NACE divisions 10-11.

    PYTHONPATH=. python bench/generation_perf.py --threads 2 --quota 6

Writes bench/results/generation-perf-nace-10-11.json and .md. Both runs go through the real engine
(create_run + run_generation, samples written to a scratch project); raw decode speed is measured
in the same process with the same loaded model just before and just after each run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from engine.classification import import_builtin
from engine.generate import GenerationParams, create_run, run_generation
from engine.classification import leaf_codes_under
from engine.llm.backends import BackendSettings, HardwareSettings
from engine.llm.llamacpp import LlamaCppBackend
from engine.llm.registry import install_default_model
from engine.store.project import Project
from engine.realdata.importing import import_preset

RESULTS = Path(__file__).resolve().parent / "results"


class MeteredBackend:
    """Delegates to the loaded model and adds up the time spent on prompts and on decoding."""

    def __init__(self, inner: LlamaCppBackend, *, reuse_prefix: bool):
        self.inner, self.reuse_prefix = inner, reuse_prefix
        self.name, self.device, self.prompt_kind = inner.name, inner.device, inner.prompt_kind
        self.model_name, self.model_sha256, self.warnings = inner.model_name, inner.model_sha256, inner.warnings
        self.settings = inner.settings
        self.prompt_s = self.decode_s = 0.0
        self.prompt_tokens = self.evaluated_prompt_tokens = self.completion_tokens = self.requests = 0

    def generate(self, request):
        if not self.reuse_prefix:
            self.inner.reset_cache()
        done = self.inner.generate(request)
        self.prompt_s += done.prompt_s
        self.decode_s += done.decode_s
        self.prompt_tokens += done.prompt_tokens
        self.evaluated_prompt_tokens += done.evaluated_prompt_tokens
        self.completion_tokens += done.completion_tokens
        self.requests += 1
        return done

    def generate_many(self, requests):
        for request in requests:
            yield self.generate(request)

    def close(self) -> None:
        pass


def _raw_decode(backend: LlamaCppBackend, n_tokens: int) -> float:
    return statistics.median(backend.decode_speed(n_tokens=n_tokens, seed=s) for s in range(2))


def _measure(project: Project, backend: LlamaCppBackend, codes: list[str], *, reuse: bool, quota: int,
             params: GenerationParams, decode_tokens: int) -> dict:
    raw_before = _raw_decode(backend, decode_tokens)
    metered = MeteredBackend(backend, reuse_prefix=reuse)
    run_id = create_run(project, codes=codes, quota=quota, seed=7, model=backend.model_sha256,
                        backend=backend.settings, strategies=["grid", "notes"], params=params,
                        name=f"perf {'with' if reuse else 'without'} prefix reuse")
    backend.reset_cache()
    start = time.perf_counter()
    result = run_generation(project, run_id, backend=metered)
    wall = time.perf_counter() - start
    raw_after = _raw_decode(backend, decode_tokens)
    raw = (raw_before + raw_after) / 2
    samples = result.samples
    decode_rate = metered.completion_tokens / metered.decode_s if metered.decode_s else 0.0
    end_to_end = metered.completion_tokens / wall if wall else 0.0
    return {
        "run_id": run_id, "codes": len(codes), "samples": samples, "requests": metered.requests,
        "wall_s": round(wall, 2), "samples_per_s": round(samples / wall, 4),
        "completion_tokens": metered.completion_tokens, "prompt_tokens": metered.prompt_tokens,
        "evaluated_prompt_tokens": metered.evaluated_prompt_tokens,
        "prompt_tokens_per_sample": round(metered.prompt_tokens / samples, 2),
        "evaluated_prompt_tokens_per_sample": round(metered.evaluated_prompt_tokens / samples, 2),
        "prompt_s": round(metered.prompt_s, 2), "decode_s": round(metered.decode_s, 2),
        "raw_decode_tokens_per_s": {"before": round(raw_before, 2), "after": round(raw_after, 2)},
        "pipeline_decode_tokens_per_s": round(decode_rate, 2),
        "pipeline_end_to_end_tokens_per_s": round(end_to_end, 2),
        "decode_ratio": round(decode_rate / raw, 3) if raw else None,
        "end_to_end_ratio": round(end_to_end / raw, 3) if raw else None,
        "parse_failures": result.parse_failures,
    }


def _interleaved(project: Project, backend: LlamaCppBackend, codes: list[str], *, rounds: int,
                 params: GenerationParams, decode_tokens: int) -> dict:
    """Raw decode and one pipeline request, alternated round by round, so that load from other
    processes on a shared machine hits both sides of the ratio alike; the median ratio is reported."""
    from engine.generate.cards import code_card
    from engine.generate.runs import grammar_for, make_request, run_context
    from engine.generate.strategies import make_task, unit_seed

    grammar, schema = grammar_for(params, "grammar")
    classification = (project.get_setting("classification", {}) or {}).get("name", "classification")
    ratios, raws, pipes = [], [], []
    for i in range(rounds):
        code = codes[i % len(codes)]
        card = code_card(project, code)
        ctx = run_context(project, code, params, ["notes"], 7)
        seed = unit_seed(7, f"{code}|notes|{i}")
        request = make_request(card, make_task("notes", card, i, seed, ctx), params=params,
                               classification=classification, kind=backend.prompt_kind, seed=seed,
                               grammar=grammar, schema=schema)
        raw = backend.decode_speed(n_tokens=decode_tokens, seed=i)
        done = backend.generate(request)
        pipe = done.completion_tokens / done.decode_s if done.decode_s else 0.0
        raws.append(raw)
        pipes.append(pipe)
        ratios.append(pipe / raw if raw else 0.0)
    return {"rounds": rounds, "raw_decode_tokens_per_s": [round(x, 2) for x in raws],
            "pipeline_decode_tokens_per_s": [round(x, 2) for x in pipes],
            "decode_ratio_median": round(statistics.median(ratios), 3),
            "decode_ratio_per_round": [round(x, 3) for x in ratios]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quota", type=int, default=6, help="samples per code in the timed runs")
    parser.add_argument("--per-request", type=int, default=6)
    parser.add_argument("--no-reuse-codes", type=int, default=8,
                        help="codes in the run without prefix reuse (its per-sample figures are what matter)")
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--name", default="generation-perf-nace-10-11")
    parser.add_argument("--rounds", type=int, default=8, help="rounds of the interleaved decode-ratio measurement")
    parser.add_argument("--ratio-only", action="store_true",
                        help="only the interleaved ratio, added to an existing result file")
    args = parser.parse_args(argv)
    command = "PYTHONPATH=. python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])

    model = install_default_model()
    params = GenerationParams(per_request=args.per_request)
    settings = BackendSettings(model_path=model.path, hardware=HardwareSettings(threads=args.threads, n_ctx=2048,
                                                                                    parallel=1))
    with tempfile.TemporaryDirectory() as scratch, Project.create(Path(scratch) / "perf.statcoder") as project:
        import_builtin(project, "nace2")
        import_preset(project, "uksic-index")
        codes = leaf_codes_under(project, ["10", "11"])
        backend = LlamaCppBackend(settings)
        if args.ratio_only:
            try:
                interleaved = _interleaved(project, backend, codes, rounds=args.rounds, params=params,
                                           decode_tokens=args.decode_tokens)
            finally:
                backend.close()
            return _add_interleaved(args, command, interleaved)
        try:
            with_reuse = _measure(project, backend, codes, reuse=True, quota=args.quota, params=params,
                                  decode_tokens=args.decode_tokens)
            subset = codes[: args.no_reuse_codes]
            without = _measure(project, backend, subset, reuse=False, quota=args.quota, params=params,
                               decode_tokens=args.decode_tokens)
        finally:
            backend.close()
    report = {
        "benchmark": "nace-uksic", "subset": ["10", "11"], "protocol": "P: generation efficiency",
        "command": command, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {"name": model.name, "sha256": model.sha256},
        "settings": {"threads": args.threads, "n_ctx": 2048, "quota_per_code": args.quota,
                     "per_request": args.per_request, "strategies": ["grid", "notes"], "device": "cpu"},
        "perf": {"samples_per_s": with_reuse["samples_per_s"], "decode_ratio": with_reuse["decode_ratio"],
                 "end_to_end_ratio": with_reuse["end_to_end_ratio"],
                 "prompt_tokens_per_sample_with_reuse": with_reuse["evaluated_prompt_tokens_per_sample"],
                 "prompt_tokens_per_sample_without_reuse": without["evaluated_prompt_tokens_per_sample"]},
        "runs": {"with_prefix_reuse": with_reuse, "without_prefix_reuse": without},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    rows = [("samples/s", "samples_per_s"), ("requests", "requests"), ("samples", "samples"),
            ("wall s", "wall_s"), ("prompt tokens evaluated per sample", "evaluated_prompt_tokens_per_sample"),
            ("prompt tokens per sample (before reuse)", "prompt_tokens_per_sample"),
            ("pipeline decode tokens/s", "pipeline_decode_tokens_per_s"),
            ("pipeline end-to-end tokens/s", "pipeline_end_to_end_tokens_per_s"),
            ("decode ratio (pipeline decode / raw decode)", "decode_ratio"),
            ("end-to-end ratio (incl. prompt time)", "end_to_end_ratio"), ("parse failures", "parse_failures")]
    lines = [f"# Generation performance, NACE divisions 10-11 ({model.name})", "",
             f"Command: `{command}`", "",
             f"Model sha256 `{model.sha256}`; CPU, {args.threads} threads, context 2048; strategies grid + notes, "
             f"{args.quota} samples per code, {args.per_request} phrases per request.", "",
             f"Raw llama.cpp decode tokens/s (same process, same model, measured before/after each run): "
             f"{with_reuse['raw_decode_tokens_per_s']} with reuse, {without['raw_decode_tokens_per_s']} without.", "",
             f"| figure | with prefix reuse ({with_reuse['codes']} codes) | without ({without['codes']} codes) |",
             "|---|---|---|"]
    lines += [f"| {label} | {with_reuse[key]} | {without[key]} |" for label, key in rows]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(json.dumps(report["perf"], indent=2))
    return 0


def _add_interleaved(args, command: str, interleaved: dict) -> int:
    path = RESULTS / f"{args.name}.json"
    report = json.loads(path.read_text(encoding="utf-8"))
    report.setdefault("interleaved", {})[f"threads_{args.threads}"] = {"command": command, **interleaved}
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md = RESULTS / f"{args.name}.md"
    md.write_text(md.read_text(encoding="utf-8") + "\n".join([
        "", f"## Interleaved decode ratio, {args.threads} thread(s)", "", f"Command: `{command}`", "",
        "Raw decode (llama-cpp-python's own generate, no grammar) and one pipeline request (grammar-constrained, "
        "real prompt of a NACE 10-11 code) alternate round by round; decode phase only.", "",
        "| round | raw decode tok/s | pipeline decode tok/s | ratio |", "|---|---|---|---|",
        *[f"| {i + 1} | {r} | {p} | {q} |" for i, (r, p, q) in enumerate(zip(
            interleaved["raw_decode_tokens_per_s"], interleaved["pipeline_decode_tokens_per_s"],
            interleaved["decode_ratio_per_round"]))],
        "", f"Median ratio: **{interleaved['decode_ratio_median']}**", ""]), encoding="utf-8")
    print(json.dumps(interleaved, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
