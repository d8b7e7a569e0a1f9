"""Engine speed as a ratio measured in one run (``make bench``; DESIGN §6).

    engine: ratio=R coded=N reps=100 t_code=…s t_parse=…s

``t_parse``: parse the scenario JSON (``json.loads``) and build the engine's
input objects (``parse_scenario`` -> ``EncounterDoc``) for every scenario in
tests/scenarios, ``reps`` times.  ``t_code``: ``evaluate`` every one of those
documents ``reps`` times.  ``ratio = t_code / t_parse``; both are the best of
``--rounds`` rounds (time.perf_counter), so a noisy neighbour inflates neither.
The files are read once, before timing: disk I/O is not the engine's work.
No database, no Django.

Usage: python benchmarks/engine_bench.py [--reps 100] [--rounds 5] [--profile]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coding.engine import EncounterDoc, evaluate, parse_scenario  # noqa: E402


def _texts() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted((ROOT / "tests" / "scenarios").glob("*.json"))]


def parse_all(texts: list[str]) -> list[EncounterDoc]:
    docs = []
    for text in texts:
        for i, raw in enumerate(json.loads(text)):
            docs.append(parse_scenario(raw, path=f"[{i}]"))
    return docs


def code_all(docs: list[EncounterDoc]) -> int:
    lines = 0
    for d in docs:
        lines += len(evaluate(d).lines)
    return lines


def best_of(rounds: int, reps: int, *works: Callable[[], object]) -> list[float]:
    """Best wall time of ``reps`` calls of each of ``works``; the rounds
    interleave the works, so a burst of load elsewhere hits both alike."""
    best = [float("inf")] * len(works)
    for _ in range(rounds):
        for i, work in enumerate(works):
            gc.collect()
            start = time.perf_counter()
            for _ in range(reps):
                work()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the coding loop instead")
    args = ap.parse_args(argv)

    texts = _texts()
    docs = parse_all(texts)
    code_all(docs)  # warm caches (zoneinfo, regexes) outside the timing
    if args.profile:
        import cProfile
        import pstats

        cProfile.runctx("for _ in range(reps): code_all(docs)", globals(), {"reps": args.reps, "docs": docs, "code_all": code_all}, "/tmp/engine_bench.prof")
        pstats.Stats("/tmp/engine_bench.prof").sort_stats("tottime").print_stats(30)
        return 0
    t_parse, t_code = best_of(args.rounds, args.reps, lambda: parse_all(texts), lambda: code_all(docs))
    print(f"engine: ratio={t_code / t_parse:.2f} coded={len(docs)} reps={args.reps} t_code={t_code:.3f}s t_parse={t_parse:.3f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
