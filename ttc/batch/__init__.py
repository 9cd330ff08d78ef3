"""Provider batch APIs (``sweep.mode = "batch"``): half the price, results within a day,
every cell stored exactly once across kills.

* ``ttc.batch.ids``: stable custom ids per cell, and packing within the APIs' limits;
* ``ttc.batch.wire``: HTTP to the provider's origin only (``BatchWire``), and the
  normalised ``BatchState`` / ``Outcome`` both APIs are read into;
* ``ttc.batch.anthropic``: Message Batches; ``ttc.batch.openai``: Files + Batch;
* ``ttc.batch.runner``: ``BatchSweep``, submit / re-attach / poll / collect;
* ``ttc.batch.results``: ``BatchResults``, outcomes into stored samples and the cells
  to send again;
* ``ttc.batch.projection``: what ``--dry-run`` says a batch sweep sends and costs.

What is stored when is documented in ``ttc.store._batches``.
"""

from __future__ import annotations

from ttc.batch.ids import CUSTOM_ID, Limits, custom_id_for
from ttc.batch.wire import BatchAPI, BatchState, BatchWire, Outcome

__all__ = ["CUSTOM_ID", "BatchAPI", "BatchState", "BatchWire", "Limits", "Outcome",
           "custom_id_for"]
