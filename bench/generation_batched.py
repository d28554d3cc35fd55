"""Protocol P, batched generation: samples/s and kept samples/s at parallel = 1, 2, 4, 8 (...) against
llama.cpp's own ceiling for the same batch size, on NACE divisions 10-11 with the default model.

    PYTHONPATH=. python -m bench.generation_batched --threads 1 --codes 6 --quota 12

Every arm runs the real engine (create_run + run_generation into a scratch project, then the default
curation) with the default strategies and generation parameters; only `parallel` changes. The
`baseline` arm is the one-request-at-a-time path (parallel 1), as committed before batching. Right
after each arm, with the same loaded model and context, the ceiling is measured with llama-cpp-python's
low-level API (llama_batch + llama_decode, no grammar, no sampling, no Python per token): N sequences
each evaluating the arm's mean evaluated prompt tokens per request, then decoding its mean completion
tokens, one token per sequence per step. Ratios are taken within one arm, minutes apart at most,
because the machine is shared and absolute speeds swing with the load.

Writes bench/results/generation-batched-nace-10-11.json and .md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import command_line, machine, now, write_result
from engine.classification import import_builtin, leaf_codes_under
from engine.curate import curate
from engine.generate import GenerationParams, create_run, run_generation, run_status
from engine.generate.strategies import DEFAULT_STRATEGIES
from engine.llm.backends import BackendSettings, HardwareSettings
from engine.llm.llamacpp import LlamaCppBackend
from engine.llm.registry import install_default_model
from engine.realdata.importing import import_preset
from engine.store.project import Project

NAME = "generation-batched-nace-10-11"  # --name overrides


def ceiling(backend: LlamaCppBackend, *, n: int, prompt_tokens: int, completion_tokens: int,
            repeats: int = 2) -> dict:
    """llama.cpp's throughput for `n` sequences of `prompt_tokens` + `completion_tokens` evaluated tokens,
    with no grammar and no sampling (a fixed token is fed back): the most the pipeline could reach."""
    import llama_cpp

    ctx = backend.llm._ctx.ctx
    memory = llama_cpp.llama_get_memory(ctx)
    n_batch = backend.settings.hardware.n_batch
    batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
    token = backend.llm.tokenize(b" bread", add_bos=False)[0]

    def decode(items):
        for start in range(0, len(items), n_batch):
            chunk = items[start:start + n_batch]
            batch.n_tokens = len(chunk)
            for i, (pos, seq, logits) in enumerate(chunk):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
                batch.seq_id[i][0], batch.logits[i] = seq, logits
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed in the ceiling measurement")

    rates = []
    try:
        for _ in range(repeats):
            llama_cpp.llama_memory_clear(memory, True)
            start = time.perf_counter()
            decode([(p, s, p == prompt_tokens - 1) for s in range(n) for p in range(prompt_tokens)])
            for step in range(completion_tokens):
                decode([(prompt_tokens + step, s, True) for s in range(n)])
            rates.append(n * (prompt_tokens + completion_tokens) / (time.perf_counter() - start))
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_memory_clear(memory, True)
        backend.reset_cache()
    return {"tokens_per_s": round(statistics.median(rates), 2), "runs": [round(r, 2) for r in rates],
            "sequences": n, "prompt_tokens_per_sequence": prompt_tokens,
            "completion_tokens_per_sequence": completion_tokens}


def run_arm(project: Project, model, codes: list[str], *, parallel: int, args, label: str,
            shape: tuple[int, int] | None) -> dict:
    hardware = HardwareSettings(threads=args.threads, n_ctx=args.ctx, parallel=parallel)
    settings = BackendSettings(model_path=model.path, hardware=hardware)
    backend = LlamaCppBackend(settings)
    try:
        run_id = create_run(project, codes=codes, quota=args.quota, seed=args.seed, model=model.sha256,
                            backend=settings, strategies=list(DEFAULT_STRATEGIES), params=GenerationParams(),
                            name=f"{label} (parallel {parallel})")
        start = time.perf_counter()
        result = run_generation(project, run_id, backend=backend)
        wall = time.perf_counter() - start
        units = project.conn.execute(
            "SELECT COUNT(*), SUM(parsed), SUM(accepted), SUM(prompt_tokens), SUM(cached_tokens),"
            " SUM(completion_tokens) FROM generation_units WHERE run_id = ?", (run_id,)).fetchone()
        requests, parsed, accepted, prompt, cached, completion = units
        evaluated_prompt = prompt - cached
        counters = backend.batch_counters()
        mean_prompt = round(evaluated_prompt / requests)
        mean_completion = round(completion / requests)
        roof = ceiling(backend, n=parallel, prompt_tokens=shape[0] if shape else mean_prompt,
                       completion_tokens=shape[1] if shape else mean_completion)
    finally:
        backend.close()
    curation = curate(project, run_ids=[run_id])
    status = run_status(project, run_id)
    kept = curation.accepted
    evaluated = evaluated_prompt + completion
    pipeline_rate = evaluated / wall
    return {
        "label": label, "parallel": parallel, "run_id": run_id, "codes": len(codes), "quota": args.quota,
        "samples": status.done, "kept": kept, "requests": requests, "phrases_parsed": parsed,
        "phrases_accepted": accepted, "parse_failures": result.parse_failures, "wall_s": round(wall, 2),
        "samples_per_s": round(status.done / wall, 4), "kept_per_s": round(kept / wall, 4),
        "prompt_tokens": prompt, "cached_tokens": cached, "evaluated_prompt_tokens": evaluated_prompt,
        "completion_tokens": completion,
        "evaluated_prompt_tokens_per_kept": round(evaluated_prompt / kept, 2) if kept else None,
        "evaluated_tokens_per_kept": round(evaluated / kept, 2) if kept else None,
        "evaluated_tokens_per_s": round(pipeline_rate, 2),
        "completion_tokens_per_s": round(completion / wall, 2),
        "ceiling": roof, "ceiling_tokens_per_s": roof["tokens_per_s"],
        "ceiling_ratio": round(pipeline_rate / roof["tokens_per_s"], 3) if roof["tokens_per_s"] else None,
        "shortfall": status.shortfall,
        "llama_decode_calls": counters["steps"],
        "mean_tokens_per_llama_decode": round(counters["evaluated_tokens"] / counters["steps"], 2)
        if counters["steps"] else None,
    }


def ab_rounds(args, command: str) -> int:
    """The same requests through a one-at-a-time backend and a batched one, alternating round by round,
    so that load from other processes on a shared machine hits both alike (the median ratio counts)."""
    from engine.generate.runs import grammar_for, make_request, plan_for_code
    from engine.generate.strategies import make_task, unit_seed

    model = install_default_model()
    sizes = [int(x) for x in args.ab.split(",")]
    params = GenerationParams()
    grammar, schema = grammar_for(params, "grammar")
    backends = {n: LlamaCppBackend(BackendSettings(model_path=model.path, hardware=HardwareSettings(
        threads=args.threads, n_ctx=args.ctx, parallel=n))) for n in sizes}
    with tempfile.TemporaryDirectory() as scratch, Project.create(Path(scratch) / "ab.statcoder") as project:
        import_builtin(project, "nace2")
        import_preset(project, "uksic-index")
        codes = leaf_codes_under(project, ["10", "11"])[: args.codes]
        requests = []
        for code in codes:   # each code's units in order, as a run sends them
            card, ctx, plan = plan_for_code(project, code, list(DEFAULT_STRATEGIES), args.quota, params, args.seed)
            for strategy, share in plan:
                for index in range(max(1, -(-share // params.per_request))):
                    unit = f"{code}|{strategy}|{index}"
                    seed = unit_seed(args.seed, unit)
                    requests.append(make_request(card, make_task(strategy, card, index, seed, ctx), params=params,
                                                 classification="NACE Rev. 2", kind=backends[sizes[0]].prompt_kind,
                                                 seed=seed, grammar=grammar, schema=schema))
    results: dict[int, list[dict]] = {n: [] for n in sizes}
    try:
        for _ in range(args.rounds):
            for n, backend in backends.items():
                backend.reset_cache()
                start = time.perf_counter()
                done = list(backend.generate_many(requests))
                wall = time.perf_counter() - start
                evaluated = sum(c.evaluated_prompt_tokens + c.completion_tokens for c in done)
                results[n].append({"wall_s": round(wall, 2), "requests_per_s": round(len(done) / wall, 4),
                                   "evaluated_tokens_per_s": round(evaluated / wall, 2),
                                   "evaluated_prompt_tokens": sum(c.evaluated_prompt_tokens for c in done),
                                   "completion_tokens": sum(c.completion_tokens for c in done)})
                print(n, results[n][-1], flush=True)
    finally:
        for backend in backends.values():
            backend.close()
    base = sizes[0]
    ratios = {n: [round(r[base]["wall_s"] / r[n]["wall_s"], 3) for r in
                  ({base: a, n: b} for a, b in zip(results[base], results[n]))] for n in sizes}
    report = {"benchmark": "nace-uksic", "subset": ["10", "11"], "protocol": "P: batched generation, A/B rounds",
              "command": command, "created": now(), "machine": machine(),
              "model": {"name": model.name, "sha256": model.sha256},
              "settings": {"threads": args.threads, "n_ctx": args.ctx, "codes": codes, "requests": len(requests),
                           "rounds": args.rounds, "parallel": sizes},
              "perf": {"speedup_per_round": ratios,
                       "median_speedup": {n: statistics.median(r) for n, r in ratios.items()}},
              "rounds": results}
    lines = [f"# Batched generation, A/B rounds, NACE 10-11 ({model.name})", "", f"Command: `{command}`", "",
             f"{len(requests)} real requests (the first units of {len(codes)} codes, default strategies and "
             f"parameters), sent through one backend per `parallel`, alternating round by round; "
             f"{args.threads} thread(s). Machine: {report['machine']['note']}.", "",
             "| parallel | wall s per round | evaluated tokens/s per round | speed-up vs parallel "
             f"{base} per round (median) |", "|---|---|---|---|"]
    lines += [f"| {n} | {[r['wall_s'] for r in results[n]]} | {[r['evaluated_tokens_per_s'] for r in results[n]]} | "
              f"{ratios[n]} ({report['perf']['median_speedup'][n]}) |" for n in sizes]
    write_result(args.name, report, "\n".join(lines) + "\n")
    print(report["perf"])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--codes", type=int, default=6, help="first N leaf codes of divisions 10-11 (32 in all)")
    parser.add_argument("--quota", type=int, default=12)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--parallel", default="2,4,8,16", help="batched arms (the baseline is parallel 1)")
    parser.add_argument("--name", default=NAME, help="result file name in bench/results")
    parser.add_argument("--ab", help="A/B rounds instead of runs: parallel values, the first is the base (e.g. 1,32)")
    parser.add_argument("--rounds", type=int, default=2, help="A/B rounds")
    args = parser.parse_args(argv)
    command = "PYTHONPATH=. " + command_line("bench.generation_batched", argv)
    if args.ab:
        return ab_rounds(args, command)
    model = install_default_model()
    arms = []
    with tempfile.TemporaryDirectory() as scratch, Project.create(Path(scratch) / "gen.statcoder") as project:
        import_builtin(project, "nace2")
        import_preset(project, "uksic-index")
        codes = leaf_codes_under(project, ["10", "11"])[: args.codes]
        baseline = run_arm(project, model, codes, parallel=1, args=args, label="baseline", shape=None)
        arms.append(baseline)
        print(_line(baseline), flush=True)
        # Every ceiling uses the baseline's request shape, so the ceilings differ only by batch size.
        shape = (baseline["ceiling"]["prompt_tokens_per_sequence"], baseline["ceiling"]["completion_tokens_per_sequence"])
        for n in [int(x) for x in args.parallel.split(",") if x.strip()]:
            arm = run_arm(project, model, codes, parallel=n, args=args, label="batched", shape=shape)
            arms.append(arm)
            print(_line(arm), flush=True)
    report = _report(args, command, model, codes, arms)
    write_result(args.name, report, _markdown(report))
    print({k: v for k, v in report["perf"].items() if k != "parallel"})
    return 0


def _line(arm: dict) -> str:
    return (f"{arm['label']} parallel {arm['parallel']}: {arm['samples']} samples ({arm['kept']} kept) in "
            f"{arm['wall_s']} s, {arm['kept_per_s']} kept/s, {arm['evaluated_tokens_per_s']} tok/s vs ceiling "
            f"{arm['ceiling_tokens_per_s']} ({arm['ceiling_ratio']})")


def _report(args, command: str, model, codes: list[str], arms: list[dict]) -> dict:
    baseline = arms[0]
    best = max(arms, key=lambda a: a["kept_per_s"])
    per_n = {str(a["parallel"]) if a["label"] == "batched" else "1 (baseline)": {
        "samples_per_s": a["samples_per_s"], "kept_per_s": a["kept_per_s"],
        "evaluated_tokens_per_kept": a["evaluated_tokens_per_kept"],
        "evaluated_prompt_tokens_per_kept": a["evaluated_prompt_tokens_per_kept"],
        "evaluated_tokens_per_s": a["evaluated_tokens_per_s"],
        "ceiling_tokens_per_s": a["ceiling_tokens_per_s"], "ceiling_ratio": a["ceiling_ratio"]} for a in arms}
    return {
        "benchmark": "nace-uksic", "subset": ["10", "11"], "protocol": "P: batched generation",
        "command": command, "created": now(), "machine": machine(),
        "model": {"name": model.name, "sha256": model.sha256},
        "settings": {"threads": args.threads, "n_ctx": args.ctx, "codes": codes, "quota_per_code": args.quota,
                     "seed": args.seed, "strategies": list(DEFAULT_STRATEGIES),
                     "generation": "GenerationParams() defaults", "device": "cpu",
                     "ceiling": "llama-cpp-python low-level API (llama_batch_init + llama_decode), no grammar, "
                                "no sampling; the baseline's mean request shape for every N"},
        "perf": {"parallel": per_n, "best_parallel": best["parallel"],
                 "kept_speedup": round(best["kept_per_s"] / baseline["kept_per_s"], 3) if baseline["kept_per_s"] else None,
                 "ceiling_ratio": best["ceiling_ratio"],
                 "ceiling_speedup_at_best": round(best["ceiling_tokens_per_s"] / baseline["ceiling_tokens_per_s"], 3)},
        "arms": arms,
    }


def _markdown(report: dict) -> str:
    arms = report["arms"]
    perf = report["perf"]
    rows = [("samples", "samples"), ("kept after the default curation", "kept"), ("requests", "requests"),
            ("wall s", "wall_s"), ("samples/s", "samples_per_s"), ("kept/s", "kept_per_s"),
            ("evaluated prompt tokens per kept sample", "evaluated_prompt_tokens_per_kept"),
            ("evaluated tokens (prompt + completion) per kept sample", "evaluated_tokens_per_kept"),
            ("pipeline evaluated tokens/s", "evaluated_tokens_per_s"),
            ("ceiling tokens/s (llama.cpp, same N)", "ceiling_tokens_per_s"),
            ("pipeline / ceiling", "ceiling_ratio"), ("parse failures", "parse_failures")]
    head = "| figure | " + " | ".join(
        "baseline (parallel 1)" if a["label"] == "baseline" else f"parallel {a['parallel']}" for a in arms) + " |"
    lines = [f"# Batched generation, NACE divisions 10-11 ({report['model']['name']})", "",
             f"Command: `{report['command']}`", "",
             f"Model sha256 `{report['model']['sha256']}`; CPU, {report['settings']['threads']} thread(s), context "
             f"{report['settings']['n_ctx']}; {len(report['settings']['codes'])} codes "
             f"({', '.join(report['settings']['codes'])}) x {report['settings']['quota_per_code']} samples, default "
             f"strategies and generation parameters, seed {report['settings']['seed']}.", "",
             f"Machine: {report['machine']['note']}.", "",
             head, "|---|" + "---|" * len(arms)]
    lines += [f"| {label} | " + " | ".join(str(a[key]) for a in arms) + " |" for label, key in rows]
    lines += ["", f"Best: parallel {perf['best_parallel']}, kept samples/s {perf['kept_speedup']} x the baseline; "
                  f"pipeline at {perf['ceiling_ratio']} of llama.cpp's ceiling for that batch size; the ceiling "
                  f"itself is {perf['ceiling_speedup_at_best']} x the one-sequence ceiling.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
