"""The audit hash chain (RELIABILITY AUD-5; SHA-2 per 45 CFR 170.210(c)(2)).

Each AuditEvent carries `row_hash = SHA-256(prev_hash ‖ canonical_row)` where
`prev_hash` is the row_hash of the row with the previous `seq` (64 zeros for
seq 1) and `canonical_row` is the UTF-8 JSON of every other column (sorted
keys, no spaces, times as ISO 8601 UTC with microseconds). Changing any
column of a row, deleting a row, or swapping rows breaks the link at that row
or the next one; deleting rows from the end is caught by the chain head
(`AuditChainHead`), which records the last seq and hash.

Appends are serialised by a row lock on the chain head, taken with
INSERT ... ON CONFLICT DO UPDATE (one statement, works on PostgreSQL and on
the demo's SQLite) and held until the appending transaction commits, so seq
order is commit order and concurrent appends never fork the chain.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction

from .models import AuditChainHead, AuditEvent

GENESIS = "0" * 64

# Every column except the surrogate id and the hash itself, in a fixed order.
CANONICAL_FIELDS = (
    "seq",
    "at",
    "actor_id",
    "username",
    "role",
    "action",
    "category",
    "object_type",
    "object_id",
    "patient_id",
    "outcome",
    "request_id",
    "detail",
    "remote_addr",
    "prev_hash",
)


def normalise_detail(detail: dict[str, Any] | None) -> dict[str, Any]:
    """`detail` as it reads back from the JSON column (dates, decimals and UUIDs as strings)."""
    return json.loads(json.dumps(detail or {}, cls=DjangoJSONEncoder))


def canonical(event: AuditEvent) -> bytes:
    """The bytes hashed for `event` (see the module docstring)."""
    values = {}
    for name in CANONICAL_FIELDS:
        value = getattr(event, name)
        if name == "at":
            value = value.astimezone(dt.UTC).isoformat(timespec="microseconds")
        elif name == "patient_id":
            value = str(value) if value is not None else None
        values[name] = value
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder).encode()


def row_hash(event: AuditEvent) -> str:
    """SHA-256 hex of prev_hash ‖ canonical row."""
    return hashlib.sha256(event.prev_hash.encode() + canonical(event)).hexdigest()


_LOCK_HEAD = (
    "INSERT INTO audit_auditchainhead (id, seq, last_hash) VALUES (1, 0, '') "
    "ON CONFLICT (id) DO UPDATE SET seq = audit_auditchainhead.seq "
    "RETURNING seq, last_hash"
)


def append(event: AuditEvent) -> AuditEvent:
    """Give `event` (unsaved) the next seq, link and hash it, and insert it.

    Runs in the caller's transaction (or its own): the chain head stays locked
    until that transaction ends. 3 queries: lock head, insert, move head (no
    savepoint of its own: a failed append fails the caller's transaction, so
    a change is never committed without its audit row).
    """
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute(_LOCK_HEAD)
            seq, last_hash = cursor.fetchone()
        event.seq = seq + 1
        event.prev_hash = last_hash or GENESIS
        event.detail = normalise_detail(event.detail)
        event.row_hash = row_hash(event)
        event.save(force_insert=True)
        AuditChainHead.objects.filter(pk=1).update(seq=event.seq, last_hash=event.row_hash)
    return event


def append_many(events: list[AuditEvent], *, batch_size: int = 2000) -> list[AuditEvent]:
    """Append `events` (unsaved, in order) under ONE lock of the chain head: as
    `append` for each, in 3 statements per batch instead of 3 per row (bulk
    imports, generated load data, tests that need thousands of rows)."""
    if not events:
        return events
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute(_LOCK_HEAD)
            seq, last_hash = cursor.fetchone()
        prev = last_hash or GENESIS
        for event in events:
            seq += 1
            event.seq = seq
            event.prev_hash = prev
            event.detail = normalise_detail(event.detail)
            event.row_hash = prev = row_hash(event)
        AuditEvent.objects.bulk_create(events, batch_size=batch_size)
        AuditChainHead.objects.filter(pk=1).update(seq=seq, last_hash=prev)
    return events


@dataclass(frozen=True)
class Problem:
    """The first place the chain does not verify: `seq`/`pk` of the row (None
    when the head is what disagrees) and what is wrong, in words."""

    seq: int | None
    pk: int | None
    reason: str

    def __str__(self) -> str:
        where = f"audit row seq={self.seq} (id={self.pk})" if self.seq is not None else "chain head"
        return f"{where}: {self.reason}"


def verify(chunk_size: int = 2000) -> tuple[int, Problem | None]:
    """Walk the chain in seq order; returns (rows checked, first problem or None).

    Checks, row by row: seq has no gap, prev_hash is the previous row_hash,
    row_hash recomputes; then that the head names the last row.
    """
    expected_seq, previous = 1, GENESIS
    checked = 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=chunk_size):
        if event.seq != expected_seq:
            return checked, Problem(event.seq, event.pk, f"expected seq {expected_seq}: row(s) {expected_seq}..{event.seq - 1} missing or reordered")
        if event.prev_hash != previous:
            return checked, Problem(event.seq, event.pk, "prev_hash is not the hash of the row before it (a row before it was changed, removed or reordered)")
        if row_hash(event) != event.row_hash:
            return checked, Problem(event.seq, event.pk, "row_hash does not match the row's contents (the row was modified)")
        previous, expected_seq = event.row_hash, expected_seq + 1
        checked += 1
    head = AuditChainHead.objects.filter(pk=1).first()
    last_seq = expected_seq - 1
    if head is None:
        if last_seq:
            return checked, Problem(None, None, f"missing while {last_seq} rows exist")
    elif (head.seq, head.last_hash or GENESIS) != (last_seq, previous):
        return checked, Problem(None, None, f"says the chain ends at seq {head.seq}, the table ends at seq {last_seq} (rows removed from the end?)")
    return checked, None
