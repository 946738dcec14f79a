"""Section 3 of the contract: ask, ask-stream (SSE), chat, chat-stream (SSE), and chat sessions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from mmrag.api import present
from mmrag.api.deps import Caller, container, qa_caller, query_caller
from mmrag.api.envelope import ok
from mmrag.api.inputs import to_params
from mmrag.api.schemas import AskRequest, ChatRequest
from mmrag.core.answering import StreamEvent

router = APIRouter(prefix="/api/v1/qa", tags=["qa"])


@router.post("/ask", summary="One question, answered from the documents with citations")
def ask(body: AskRequest, request: Request, caller: Caller = Depends(qa_caller), c=Depends(container)):
    prep, answer = c.answers.ask(caller.tenant, to_params(body))
    return ok(present.answer_data(request, prep, answer), "问答成功")


@router.post("/ask-stream", summary="The same as ask, streamed as Server-Sent Events")
async def ask_stream(body: AskRequest, request: Request, caller: Caller = Depends(qa_caller), c=Depends(container)):
    params = to_params(body)
    await run_in_threadpool(c.answers.validate, params)  # bad input is a plain 400 before the stream starts
    cancelled = threading.Event()
    return sse(request, c.answers.stream(caller.tenant, params, cancelled), cancelled)


def sse(request: Request, produce: Iterator[StreamEvent], cancelled: threading.Event) -> StreamingResponse:
    """The events of AnswerService.stream as Server-Sent Events; a client that goes away sets `cancelled`."""

    async def events():
        try:
            async for event in iterate_in_threadpool(produce):
                if await request.is_disconnected():
                    break
                for item in present.stream_events(request, event):
                    yield f"data: {json.dumps(item, ensure_ascii=False)}\n\n"
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
    return ok(present.chat_data(request, turn), "问答成功")


@router.post("/chat-stream", summary="The same as chat, streamed as Server-Sent Events (the turn saved when complete)")
async def chat_stream(body: ChatRequest, request: Request, caller: Caller = Depends(qa_caller), c=Depends(container)):
    params = to_params(body)
    history = None if body.history is None else [(m.role, m.content, m.images) for m in body.history]
    # bad input (question, model, history pictures) is a plain 400 before the stream starts
    ctx = await run_in_threadpool(c.answers.begin_chat, caller.tenant, params, body.session_id, history)
    cancelled = threading.Event()
    produce = c.answers.chat_stream(caller.tenant, params, ctx, body.options.save_session, cancelled)
    return sse(request, produce, cancelled)


@router.get("/sessions", summary="The caller's chat sessions, most recently active first, paged")
def list_sessions(
    page: int = Query(1, ge=1, le=1_000_000),
    page_size: int = Query(20, ge=1, le=100),
    caller: Caller = Depends(query_caller),
    c=Depends(container),
):
    total, sessions = c.answers.list_sessions(caller.tenant, page, page_size)
    return ok(present.session_list(total, page, page_size, sessions), "查询成功")


@router.get("/sessions/{session_id}", summary="A chat session's messages")
def get_session(session_id: str, caller: Caller = Depends(query_caller), c=Depends(container)):
    return ok(present.session_detail(c.answers.session(caller.tenant, session_id)), "查询成功")


@router.delete("/sessions/{session_id}", summary="Delete a chat session")
def delete_session(session_id: str, caller: Caller = Depends(query_caller), c=Depends(container)):
    n = c.answers.delete_session(caller.tenant, session_id)
    return ok({"session_id": session_id, "deleted_messages": n}, "会话删除成功")
