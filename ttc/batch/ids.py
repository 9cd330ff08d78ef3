"""Custom ids and packing: which cell an entry is, and how entries fill batches.

A custom id is derived from the cell key alone (a hash), so the same cell always goes
out under the same id, and the id is stored with the cell before the batch is sent:
a result line maps back to its cell through the store, never through memory that a
kill would lose. Both providers accept it: Anthropic requires ``^[a-zA-Z0-9_-]{1,64}$``
(checked here); OpenAI takes any string unique within its batch.

``Packer`` fills batches in plan order up to the provider's limits on requests and
bytes; ``pack_counts`` does the same arithmetic for ``--dry-run`` without building
any entry.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ttc.store import SampleKey

__all__ = ["CUSTOM_ID", "Limits", "Packer", "custom_id_for", "pack_counts"]

#: what Anthropic's Message Batches accept as a custom id
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def custom_id_for(key: SampleKey) -> str:
    """A stable id for a cell: ``ttc_`` + 40 hex digits of a hash of its key."""
    problem_id, budget, index = key
    raw = f"{problem_id}\x1f{budget}\x1f{index}".encode()
    custom_id = "ttc_" + hashlib.blake2b(raw, digest_size=20).hexdigest()
    assert CUSTOM_ID.fullmatch(custom_id)
    return custom_id


@dataclass(frozen=True, slots=True)
class Limits:
    """What one batch may hold; ``overhead`` is the envelope's bytes, ``separator``
    what each further entry adds (a comma in a JSON array, a newline in JSONL)."""

    max_requests: int
    max_bytes: int
    overhead: int = 0
    separator: int = 1


@dataclass(slots=True)
class Entry:
    """One encoded request on its way into a batch."""

    key: SampleKey
    custom_id: str
    line: bytes


class Packer:
    """Groups entries into batches within ``limits``, in the order they come."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._entries: list[Entry] = []
        self._bytes = limits.overhead
        self._ids: set[str] = set()

    def add(self, entry: Entry) -> list[Entry] | None:
        """Add one entry; returns a full batch when this entry did not fit in it.

        An entry too large for any batch raises ``ValueError`` (the caller fails its cell).
        """
        size = len(entry.line)
        lim = self.limits
        if lim.overhead + size > lim.max_bytes:
            raise ValueError(f"one request is {size:,} bytes; a batch holds at most "
                             f"{lim.max_bytes:,}")
        full = None
        grown = self._bytes + size + (lim.separator if self._entries else 0)
        if self._entries and (len(self._entries) >= lim.max_requests or grown > lim.max_bytes
                              or entry.custom_id in self._ids):
            full = self.flush()
        self._bytes += size + (lim.separator if self._entries else 0)
        self._entries.append(entry)
        self._ids.add(entry.custom_id)
        return full

    def flush(self) -> list[Entry]:
        """The batch being filled (possibly empty); starts a new one."""
        out, self._entries, self._ids = self._entries, [], set()
        self._bytes = self.limits.overhead
        return out


def pack_counts(
    groups: Iterable[tuple[int, int]], limits: Limits
) -> Iterator[tuple[int, int, int]]:
    """``(requests, bytes, repeat)``: runs of ``repeat`` identical batches that ``Packer``
    would fill from groups of ``(count, bytes per entry)``.

    Closed form, O(groups) whatever the counts: a group first tops up the open batch,
    then fills ``count // per`` whole batches at once, and leaves its remainder open for
    the next group (as ``Packer`` does). A billion samples used to walk 20,000 batches
    per (problem, budget); ``--dry-run`` now answers in the time of the groups alone.
    An entry too large for any batch (which ``Packer`` refuses) counts as a batch of
    its own.
    """
    sep, overhead = limits.separator, limits.overhead
    n, size = 0, overhead  # the open batch
    for count, each in groups:
        if count <= 0:
            continue
        if overhead + each > limits.max_bytes:  # Packer refuses these: one each
            yield 1, overhead + each, count
            continue
        step = each + sep
        room_b = (limits.max_bytes - size + (sep if n == 0 else 0)) // step
        take = min(count, limits.max_requests - n, max(0, room_b))
        if take:
            size += take * step - (sep if n == 0 else 0)
            n += take
            count -= take
        if not count:
            continue
        if n:  # the open batch has no room for this group's next entry
            yield n, size, 1
        per = min(limits.max_requests, (limits.max_bytes - overhead + sep) // step)
        whole, rest = divmod(count, per)
        full = overhead + per * step - sep
        if rest:
            if whole:
                yield per, full, whole
            n, size = rest, overhead + rest * step - sep
        else:  # the last whole batch stays open: a later, smaller entry may still fit
            if whole > 1:
                yield per, full, whole - 1
            n, size = per, full
    if n:
        yield n, size, 1
