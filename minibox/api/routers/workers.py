"""/workers: the farm's live build workers, as they advertise themselves in Redis (name,
host, platform, queue, concurrency, pid; builder.platforms)."""

from __future__ import annotations

from fastapi import APIRouter

from minibox.api.deps import ServicesDep

router = APIRouter(prefix="/workers", tags=["workers"])


@router.get("")
def list_workers(s: ServicesDep) -> list[dict]:
    """Every build worker whose advertisement is alive, by name."""
    from minibox.builder.platforms import live_workers

    return [ad.to_wire() for ad in live_workers(s.redis)]
