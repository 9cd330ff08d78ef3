"""How well does a trace's confidence predict its correctness? (docs/adaptive.md)

    python experiments/confidence_auroc.py RUN

Reads a run swept with ``sweep.logprobs = true`` and prints the AUROC of DeepConf's
lowest group confidence (windows 4, 8, 16) and of the mean token confidence against
correctness, a problem-bootstrap interval for window 8 (problems resampled, as every
ttc interval), and the mean within-problem AUROC over problems with both right and wrong
traces (the comparison DeepConf's filtering actually makes).
"""

from __future__ import annotations

import sys

import numpy as np

from ttc.adaptive.deepconf import TraceConfidence
from ttc.adaptive.logprobs import decode_logprobs, token_confidence
from ttc.store import RunStore


def auroc(scores: np.ndarray, right: np.ndarray) -> float:
    """P(a right trace scores above a wrong one), ties counting half; NaN without both."""
    pos, neg = scores[right], scores[~right]
    if not len(pos) or not len(neg):
        return float("nan")
    return float((pos[:, None] > neg[None, :]).mean() + (pos[:, None] == neg[None, :]).mean() / 2)


def main(path: str) -> None:
    with RunStore(path, read_only=True) as store:
        rows = [r for r in store.iter_samples(with_logprobs=True)
                if r.status != "failed" and r.logprobs is not None]
    right = np.array([bool(r.correct) for r in rows])
    conf = [token_confidence(decode_logprobs(r.logprobs or b"")) for r in rows]
    print(f"{len(rows)} traces, {right.mean():.3f} right, "
          f"{np.mean([r.output_tokens for r in rows]):.1f} output tokens on average")
    lowest = {w: np.array([TraceConfidence.from_confidence(c, w).lowest for c in conf])
              for w in (4, 8, 16)}
    for w, scores in lowest.items():
        print(f"window {w:2d}: AUROC of the lowest group confidence {auroc(scores, right):.3f}")
    print(f"mean token confidence: AUROC {auroc(np.array([c.mean() for c in conf]), right):.3f}")
    problems = np.array([r.problem_id for r in rows])
    ids = sorted(set(problems))
    index = {p: np.nonzero(problems == p)[0] for p in ids}
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(1000):
        pick = np.concatenate([index[p] for p in rng.choice(ids, len(ids))])
        boot.append(auroc(lowest[8][pick], right[pick]))
    low, high = np.nanpercentile(boot, [2.5, 97.5])
    print(f"window 8: problem-bootstrap 95% CI [{low:.3f}, {high:.3f}]")
    within = [auroc(lowest[8][i], right[i]) for i in index.values()]
    within = [v for v in within if v == v]
    print(f"within problems with right and wrong traces ({len(within)}): "
          f"mean AUROC {np.mean(within):.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
