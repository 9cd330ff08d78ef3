"""What ``--dry-run`` says a sweep would send through a batch API, and what it would cost.

Counted, not built: one entry per (problem, budget) is encoded to learn its size, and
``pack_counts`` packs the missing cells within the provider's limits the way the
runner's ``Packer`` will, in closed form (O(problems x budgets), never per batch).
Only a batch sweep projects this (``--dry-run`` of an online sweep does not pack). The
cost is the online projection (every sample at its cap) times ``1 - model.batch_discount``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ttc.batch.ids import Limits, custom_id_for, pack_counts
from ttc.providers.base import HTTPProvider, Provider

if TYPE_CHECKING:
    from ttc.plan import SweepPlan
    from ttc.recorder import Recorder

__all__ = ["BatchProjection", "project_batches"]

#: bytes per entry beyond the first sample's (longer seeds and sample indices)
_SLACK = 16


@dataclass(frozen=True, slots=True)
class BatchProjection:
    """How the missing cells would go out in batch mode."""

    batches: int
    requests: int
    bytes: int
    cost: float
    discount: float
    limits: Limits


def project_batches(recorder: Recorder, provider: Provider, plan: SweepPlan
                    ) -> BatchProjection | None:
    """The batch projection of ``plan`` (``recorder``: the sweep's requests); None when
    the provider has no batch API."""
    if not isinstance(provider, HTTPProvider):
        return None
    api = provider.batch_api()
    if api is None:
        return None
    groups = []
    for job, n in plan.jobs.groups():
        key = (job.problem.id, str(job.budget), job.sample_index)
        line = api.encode(custom_id_for(key), provider.batch_body(recorder.request(job)))
        groups.append((n, len(line) + _SLACK))
    packed = list(pack_counts(groups, api.limits))
    discount = recorder.config.model.batch_discount
    return BatchProjection(
        batches=sum(r for _, _, r in packed),
        requests=sum(n * r for n, _, r in packed),
        bytes=sum(b * r for _, b, r in packed),
        cost=plan.projected_cost * (1.0 - discount),
        discount=discount,
        limits=api.limits,
    )
