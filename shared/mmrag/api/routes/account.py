"""GET /api/v1/me: whom the API key belongs to and which answer providers and models this server offers (the
studio's header and model picker). Read-only; counts as a query."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mmrag.api import present
from mmrag.api.deps import Caller, container, query_caller
from mmrag.api.envelope import ok

router = APIRouter(prefix="/api/v1", tags=["account"])


@router.get("/me", summary="The caller's tenant and the answer models the server offers")
def me(caller: Caller = Depends(query_caller), c=Depends(container)):
    registry = c.answers.generators
    return ok(present.caller_info(caller.tenant, caller.key_id, registry.default_model, registry.offered()), "查询成功")
