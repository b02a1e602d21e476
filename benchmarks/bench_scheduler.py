"""Time the PassManager's scheduler and the CLI's start-up.

Targets (issue 2): ``plan()`` on 500 passes with 2,000 facts/constraints in under
0.2 s; ``driver --help`` in under 1 s wall.

The 500 fake passes are built from a hidden valid order, so the pipeline can be
scheduled: four levels joined by three conversions and a ``last`` emit pass; facts
made by one or two providers and read by later passes (chains of providers and
consumers); ``after``/``before`` between passes that the hidden order already puts
that way; invalidations of facts whose readers all come earlier. The pipeline lists
the passes shuffled (seeded), so the manager does the ordering. Every generated
order is checked against the contracts before it is timed.

    python benchmarks/bench_scheduler.py              # print the numbers
    python benchmarks/bench_scheduler.py --profile    # and where plan() spends its time
    python benchmarks/bench_scheduler.py --check      # exit 1 when a target is missed
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from pteflow.ir import Fact, Level
from pteflow.passes.base import Pass, PassInfo
from pteflow.passes.manager import Plan, plan

PLAN_TARGET_S = 0.2
HELP_TARGET_S = 1.0

# Passes per level (same-level passes); plus 3 conversions and 1 emit: 500 in all.
PER_LEVEL = {Level.EAGER: 200, Level.ATEN: 100, Level.EDGE: 150, Level.EXECUTORCH: 46}
# Facts/constraints in all: provides + requires + invalidates + after + before.
BUDGET = {"provides": 600, "requires": 800, "invalidates": 150, "after": 250, "before": 200}


@attrs.define
class _Draft:
    """A pass being generated, at its position in the hidden valid order."""

    name: str
    level_in: Level
    level_out: Level
    requires: set[Fact] = attrs.Factory(set)
    provides: set[Fact] = attrs.Factory(set)
    invalidates: set[Fact] = attrs.Factory(set)
    after: set[int] = attrs.Factory(set)
    before: set[int] = attrs.Factory(set)
    last: bool = False


def build_pipeline(seed: int = 0) -> tuple[list[Pass], Counter]:
    """500 fake passes (each its own class), listed shuffled; and the constraint counts."""
    rng = random.Random(seed)
    hidden: list[_Draft] = []
    levels = list(PER_LEVEL)
    for k, level in enumerate(levels):
        hidden += [_Draft(f"{level.label}-pass-{i}", level, level) for i in range(PER_LEVEL[level])]
        if k + 1 < len(levels):
            hidden.append(_Draft(f"to-{levels[k + 1].label}", level, levels[k + 1]))
    hidden.append(_Draft("emit", Level.EXECUTORCH, Level.EXECUTORCH, last=True))
    n = len(hidden)
    assert n == 500, n

    # Facts: 400 facts, 600 provides in all (200 facts have a second provider) ...
    n_facts = 400
    facts = [Fact(f"fact-{i}", f"synthetic fact {i}") for i in range(n_facts)]
    made_at: dict[Fact, list[int]] = {}
    spots = sorted(rng.sample(range(n - 60), n_facts))  # providers in the first 440
    for f, at in zip(facts, spots, strict=True):
        made_at[f] = [at]
    for f in rng.sample(facts, BUDGET["provides"] - n_facts):
        first = made_at[f][0]
        made_at[f].append(min(n - 2, first + rng.randint(1, 5)))
    for f, where in made_at.items():
        for at in where:
            hidden[at].provides.add(f)

    # ... read by 800 later passes (a reader comes after every provider of its fact),
    # mostly soon after (chains), sometimes far away.
    readers: dict[Fact, list[int]] = {f: [] for f in facts}
    done = 0
    while done < BUDGET["requires"]:
        f = rng.choice(facts)
        start = max(made_at[f]) + 1
        gap = rng.randint(1, 12) if rng.random() < 0.8 else rng.randint(1, n)
        at = min(n - 1, start + gap - 1)
        if f in hidden[at].requires or f in hidden[at].provides:
            continue
        hidden[at].requires.add(f)
        readers[f].append(at)
        done += 1

    # Invalidations: a fact is invalidated after its last reader (and last provider).
    done = 0
    for f in rng.sample(facts, len(facts)):
        if done == BUDGET["invalidates"]:
            break
        last_use = max([*readers[f], *made_at[f]])
        if last_use >= n - 2:
            continue
        at = rng.randint(last_use + 1, n - 2)  # not the emit pass
        if f in hidden[at].provides:
            continue
        hidden[at].invalidates.add(f)
        done += 1
    assert done == BUDGET["invalidates"], done

    # after/before: between passes the hidden order already puts that way, nearby.
    for kind in ("after", "before"):
        done = 0
        while done < BUDGET[kind]:
            i = rng.randrange(n - 1)
            j = min(n - 2, i + rng.randint(1, 30))
            if i == j:
                continue
            if kind == "after" and i not in hidden[j].after:
                hidden[j].after.add(i)
                done += 1
            elif kind == "before" and j not in hidden[i].before:
                hidden[i].before.add(j)
                done += 1

    classes = [
        attrs.frozen(type(f"Bench{i}", (Pass,), {"__doc__": f"Bench pass {d.name}."}))
        for i, d in enumerate(hidden)
    ]
    for d, cls in zip(hidden, classes, strict=True):
        cls.info = PassInfo(
            name=d.name,
            level_in=d.level_in,
            level_out=d.level_out,
            requires=d.requires,
            provides=d.provides,
            invalidates=d.invalidates,
            after=tuple(classes[k] for k in sorted(d.after)),
            before=tuple(classes[k] for k in sorted(d.before)),
            last=d.last,
        )
    passes = [cls() for cls in classes]
    rng.shuffle(passes)
    counts = Counter({k: sum(len(getattr(d, k)) for d in hidden) for k in BUDGET})
    return passes, counts


def check_order(p: Plan) -> None:
    """The order honours every contract: levels, facts at run time, after/before, last."""
    level = Level.EAGER
    held: set[Fact] = set()
    rank = {type(x): r for r, x in enumerate(p.ordered_passes())}
    ordered = p.ordered_passes()
    for r, x in enumerate(ordered):
        info = x.contract
        assert info.level_in == level, f"{x.name}: level {level.label}"
        assert info.requires <= held, f"{x.name}: missing {info.requires - held}"
        assert all(rank[c] < r for c in info.after), f"{x.name}: after"
        assert all(rank[c] > r for c in info.before), f"{x.name}: before"
        held = (held - (info.invalidates - info.provides)) | info.provides
        level = info.level_out
    assert ordered[-1].contract.last


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def driver_command() -> list[str]:
    script = Path(sys.executable).with_name("driver")
    if script.exists():
        return [str(script), "--help"]
    found = shutil.which("driver")
    return [found, "--help"] if found else [sys.executable, "-m", "pteflow.driver", "--help"]


def time_help(repeat: int) -> tuple[float, list[str]]:
    cmd = driver_command()

    def once() -> None:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    return best_of(repeat, once), cmd


def verdict(seconds: float, target: float) -> str:
    return (
        f"under the {target:g} s target" if seconds < target else f"MISSED the {target:g} s target"
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="best of N (default 5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", action="store_true", help="print plan()'s top functions")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)

    passes, counts = build_pipeline(args.seed)
    result = plan(passes)
    check_order(result)
    total = sum(counts.values())
    detail = ", ".join(f"{k} {v}" for k, v in counts.items())
    edges = sum(len(v) for v in result.reasons.values())
    print(
        f"plan(): {len(passes)} passes, {total} facts/constraints ({detail}); "
        f"{len(result.reasons)} graph edges ({edges} reasons)"
    )
    plan_s = best_of(args.repeat, lambda: plan(passes))
    print(f"  best of {args.repeat}: {plan_s:.3f} s  ({verdict(plan_s, PLAN_TARGET_S)})")

    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(plan, passes)
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(15)
        print(out.getvalue())

    help_s, cmd = time_help(args.repeat)
    print(
        f"{' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}: "
        f"best of {args.repeat}: {help_s:.3f} s wall  ({verdict(help_s, HELP_TARGET_S)})"
    )
    missed = plan_s >= PLAN_TARGET_S or help_s >= HELP_TARGET_S
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
