"""How many more samples a stop rule certainly needs: the size of the next wave.

The online sampler must never start a sample the rule would not need. Sample i is
needed exactly when the rule has not stopped after samples 0..i-1, so after ``drawn``
samples the next k are all needed iff no continuation of fewer than k samples can make
the rule stop. ``wave_size`` finds the smallest k at which some continuation *could*
stop it (every answer the next samples might give: a class seen so far, a new class, or
no answer) by a breadth-first search over the tallies reachable in j steps, the same
anonymous states the rule reads (``Tally``: counts largest first, abstentions, the
trailing run capped at the rule's ``memory``). ESC's waves are its windows;
Adaptive-Consistency at 0.95 starts with four samples (three agreeing ones reach only
0.9375). If the search grows past ``max_states`` at depth j it answers j, which is
still safe: no continuation stopped the rule at any depth below j.

The rules of ``ttc.adaptive.rules`` answer in closed form instead (``_could_stop``):
ESC can stop only at a window's end, when the run can fill the window; the posterior of
Adaptive-Consistency (either criterion) grows fastest when every new sample joins the
leader, so it can stop after j more samples iff that continuation stops it; the bounds
add their own ends. The tests check the closed forms against the search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ttc.adaptive.rules import ESC, AdaptiveConsistency, Bounded, FixedSamples, StopRule, Tally

__all__ = ["wave_size"]

#: (counts largest first, abstained, position of the last class in counts or -1, run)
_State = tuple[tuple[int, ...], int, int, int]


def _sorted(counts: list[int], last: int) -> tuple[tuple[int, ...], int]:
    """Counts largest first; the last class placed first among equal counts (canonical)."""
    value = counts[last] if last >= 0 else None
    if last >= 0:
        counts = counts[:last] + counts[last + 1:]
    counts.sort(reverse=True)
    if value is None:
        return tuple(counts), -1
    pos = next((i for i, c in enumerate(counts) if c <= value), len(counts))
    counts.insert(pos, value)
    return tuple(counts), pos


def _next(state: _State, memory: int) -> set[_State]:
    counts, abstained, last, run = state
    out: set[_State] = {(counts, abstained + 1, -1, 0)}  # no answer
    seen: set[tuple[int, bool]] = set()
    for i, c in enumerate(counts):  # one representative per (count, is the last class)
        kind = (c, i == last)
        if kind in seen:
            continue
        seen.add(kind)
        grown = list(counts)
        grown[i] += 1
        new, pos = _sorted(grown, i)
        out.add((new, abstained, pos, min(run + 1, memory) if i == last else min(1, memory)))
    new, pos = _sorted([*counts, 1], len(counts))  # a class not seen yet
    out.add((new, abstained, pos, min(1, memory)))
    return out


def start_state(classes: Sequence[object | None], memory: int) -> _State:
    """The search state after the given answer classes (None = no answer), in order."""
    counts: dict[object, int] = {}
    last: object | None = None
    run = abstained = 0
    for c in classes:
        if c is None:
            abstained, last, run = abstained + 1, None, 0
            continue
        counts[c] = counts.get(c, 0) + 1
        run = run + 1 if c == last else 1
        last = c
    names = list(counts)
    values = [counts[n] for n in names]
    pos = names.index(last) if last is not None else -1
    ordered, at = _sorted(values, pos)
    return ordered, abstained, at, min(run, memory)


def _could_stop(rule: StopRule, state: _State, remaining: int
                ) -> Callable[[int], bool] | None:
    """``j -> whether some continuation of j samples can stop the rule``; None: unknown rule."""
    counts, abstained, last, run = state
    drawn = sum(counts) + abstained
    if isinstance(rule, ESC):
        w = rule.window
        return lambda j: (drawn + j) % w == 0 and (j >= w or (last >= 0 and run + j >= w))
    if isinstance(rule, AdaptiveConsistency):
        rest = counts[1:]
        need = next((j for j in range(1, remaining + 1) if rule.should_stop(
            Tally(((counts[0] if counts else 0) + j, *rest), abstained, 0))), remaining + 1)
        return lambda j: j >= need
    if isinstance(rule, FixedSamples):
        return lambda j: drawn + j >= rule.k
    if isinstance(rule, Bounded):
        inner = _could_stop(rule.rule, state, remaining)
        if inner is None:
            return None
        top = rule.max_samples
        return lambda j: (top is not None and drawn + j >= top) or (
            drawn + j >= rule.min_samples and inner(j))
    return None


def wave_size(rule: StopRule, classes: Sequence[object | None], remaining: int, *,
              max_states: int = 20_000, search: bool = False) -> int:
    """Samples certainly needed next (1..remaining) after ``classes`` were drawn.

    ``search=True`` always searches (the tests compare it with the closed forms).
    """
    if remaining <= 0:
        return 0
    memory = rule.memory
    known = None if search else _could_stop(rule, start_state(classes, memory), remaining)
    if known is not None:
        return next((j for j in range(1, remaining + 1) if known(j)), remaining)
    frontier = {start_state(classes, memory)}
    for depth in range(1, remaining + 1):
        frontier = set().union(*(_next(s, memory) for s in frontier))
        if any(rule.should_stop(Tally(c, a, r)) for c, a, _last, r in frontier):
            return depth
        if len(frontier) > max_states:
            return depth
    return remaining
