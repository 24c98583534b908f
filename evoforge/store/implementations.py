"""The implementation cache as a table: stage results reused for an equal implementation hash.

Stages whose outcome depends only on the implementation (RTL ``timing`` on the synthesised netlist,
kernel ``resources`` of the compiled binary) are stored per (target fingerprint, implementation hash,
context digest, stage), so every worker — threads of one process, Ray workers on other machines,
later jobs — reuses them. The first result stored for a key stays (``INSERT … ON CONFLICT DO
NOTHING``). Results are JSON documents (``StageResult`` fields without the log).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from evoforge.domain import Metrics, StageResult
from evoforge.store._convert import db_errors, jsonable
from evoforge.store.models import ImplementationResult, utcnow


def result_to_dict(result: StageResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "ok": result.ok,
        "seconds": result.seconds,
        "metrics": result.metrics.to_dict(),
        "detail": result.detail,
        "data": jsonable(result.data),
    }


def result_from_dict(data: dict[str, Any]) -> StageResult:
    return StageResult(
        name=str(data["name"]),
        ok=bool(data["ok"]),
        seconds=float(data.get("seconds") or 0.0),
        metrics=Metrics.from_dict(data.get("metrics")),
        detail=str(data.get("detail") or ""),
        data=dict(data.get("data") or {}),
    )


@db_errors
def find_implementation_results(
    session: Session, *, target_fingerprint: str, implementation_hash: str, context_digest: str
) -> dict[str, StageResult]:
    """The stored stage results of one implementation, by stage name (empty when none)."""
    rows = session.scalars(
        select(ImplementationResult).where(
            ImplementationResult.target_fingerprint == target_fingerprint,
            ImplementationResult.implementation_hash == implementation_hash,
            ImplementationResult.context_digest == context_digest,
        )
    )
    return {row.stage: result_from_dict(row.result) for row in rows}


@db_errors
def put_implementation_results(
    session: Session,
    *,
    target_fingerprint: str,
    implementation_hash: str,
    context_digest: str,
    results: dict[str, StageResult],
) -> None:
    """Store each stage result unless one is stored for its key already (race-free)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for stage, result in results.items():
        values = {
            "target_fingerprint": target_fingerprint,
            "implementation_hash": implementation_hash,
            "context_digest": context_digest,
            "stage": stage,
            "result": result_to_dict(result),
            "created_at": utcnow(),
        }
        session.execute(
            insert(ImplementationResult)
            .values(**values)
            .on_conflict_do_nothing(
                index_elements=["target_fingerprint", "implementation_hash", "context_digest", "stage"]
            )
        )
