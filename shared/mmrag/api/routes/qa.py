"""Section 3 of the contract: ask, ask-stream (SSE), chat, and chat sessions."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from mmrag.api import present
from mmrag.api.deps import Caller, container, qa_caller, query_caller
from mmrag.api.envelope import ok
from mmrag.api.inputs import to_params
from mmrag.api.schemas import AskRequest, ChatRequest
from mmrag.core.answering import Prepared

router = APIRouter(prefix="/api/v1/qa", tags=["qa"])


def images_payload(request: Request, prep: Prepared) -> list[dict[str, Any]]:
    out = []
    for rec, score in prep.images:
        url, thumb = present.image_urls(request, rec.image_id)
        out.append(
            {
                "image_id": rec.image_id,
                "document_id": rec.document_id,
                "image_url": url,
                "thumbnail_url": thumb,
                "caption": rec.caption or rec.ocr_text,
                "relevance_score": round(score, 6),
                "page": rec.page_number,
            }
        )
    return out


def _answer_data(request: Request, c, prep: Prepared, final: dict[str, Any]) -> dict[str, Any]:
    p = prep.params
    data = {
        "question": p.question,
        **final,
        "response_time": round(time.perf_counter() - prep.started, 4),
        "timings": prep.timings,
        "sources": c.answers.source_dicts(prep) if p.include_sources else [],
        "retrieved_images": images_payload(request, prep) if p.include_images else [],
    }
    return data


@router.post("/ask", summary="One question, answered from the documents with citations")
def ask(body: AskRequest, request: Request, caller: Caller = Depends(qa_caller), c=Depends(container)):
    prep, final = c.answers.ask(caller.tenant, to_params(body))
    return ok(_answer_data(request, c, prep, final), "问答成功")


@router.post("/ask-stream", summary="The same as ask, streamed as Server-Sent Events")
async def ask_stream(body: AskRequest, request: Request, caller: Caller = Depends(qa_caller), c=Depends(container)):
    params = to_params(body)
    await run_in_threadpool(c.answers.validate, params)  # bad input is a plain 400 before the stream starts

    cancelled = threading.Event()
    produce = c.answers.stream(caller.tenant, params, lambda prep: images_payload(request, prep), cancelled)

    async def events():
        try:
            async for event in iterate_in_threadpool(produce):
                if await request.is_disconnected():
                    break
                yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
        finally:  # normal end, or Starlette cancelled us because the client disconnected
            cancelled.set()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/chat", summary="A conversation turn: history from the session store or the request")
def chat(body: ChatRequest, request: Request, caller: Caller = Depends(qa_caller), c=Depends(container)):
    history = None if body.history is None else [(m.role, m.content, m.images) for m in body.history]
    turn = c.answers.chat(caller.tenant, to_params(body), body.session_id, history, save=body.options.save_session)
    data = _answer_data(request, c, turn.prep, turn.final)
    data["session_id"] = turn.session_id
    data["context_used"] = {
        "history_turns": turn.history_turns,
        "retrieved_chunks": sum(1 for s in turn.prep.sources if s.kind == "chunk"),
        "retrieved_images": len(turn.prep.images),
        "history_query": turn.history_query,
    }
    data["follow_up_suggestions"] = turn.suggestions
    data["session_saved"] = turn.saved
    return ok(data, "问答成功")


@router.get("/sessions/{session_id}", summary="A chat session's messages")
def get_session(session_id: str, caller: Caller = Depends(query_caller), c=Depends(container)):
    from mmrag.errors import NotFound

    s = c.sessions.get_session(caller.tenant, session_id)
    if s is None:
        raise NotFound(f"session {session_id} not found")
    messages = []
    for m in s.messages:
        item = {"message_id": m.message_id, "role": m.role, "content": m.content, "timestamp": m.timestamp}
        if m.role == "user":
            item["images"] = [{"image_id": i.get("image_id")} for i in m.images]
        else:
            item["sources"] = m.sources
        messages.append(item)
    return ok(
        {
            "session_id": s.session_id,
            "created_at": s.created_at,
            "updated_at": s.updated_at,
            "message_count": len(messages),
            "messages": messages,
        },
        "查询成功",
    )


@router.delete("/sessions/{session_id}", summary="Delete a chat session")
def delete_session(session_id: str, caller: Caller = Depends(query_caller), c=Depends(container)):
    n = c.answers.delete_session(caller.tenant, session_id)
    return ok({"session_id": session_id, "deleted_messages": n}, "会话删除成功")
