"""Section 1 of the contract: upload, batch upload, list, detail, metadata update, delete; and image files."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from mmrag.api import present
from mmrag.api.deps import Caller, container, full_image_caller, query_caller, thumbnail_caller, upload_caller
from mmrag.api.envelope import ok
from mmrag.api.inputs import batch_item, form_flag, json_body, json_field, validation_message
from mmrag.api.request_body import BATCH_FACTOR, upload_body_limit
from mmrag.api.schemas import (
    BatchUploadRequest,
    DocumentMetadata,
    MetadataUpdate,
    ProcessingOptions,
    ReprocessRequest,
    UploadRequest,
)
from mmrag.errors import InvalidParameter

router = APIRouter(prefix="/api/v1", tags=["documents"])


@router.post("/documents/upload", summary="Upload a document (JSON with base64/URL/raw text, or multipart)")
async def upload(request: Request, caller: Caller = Depends(upload_caller), c=Depends(container)):
    svc = c.documents
    limit = upload_body_limit(svc.max_upload_bytes)
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_part_size=svc.max_upload_bytes + 1)
        part = form.get("file")
        if part is None or isinstance(part, str):
            raise InvalidParameter("multipart upload needs a 'file' part")
        raw = await part.read(svc.max_upload_bytes + 1)
        try:
            meta = DocumentMetadata(**(json_field(form, "metadata") or {})).as_dict()
            opts = ProcessingOptions(**(json_field(form, "processing_options") or {})).as_dict()
        except ValidationError as exc:
            raise InvalidParameter(validation_message(exc)) from exc
        done = await _run(
            c,
            svc.submit,
            caller.tenant,
            str(form.get("document_type") or "") or None,
            raw=raw,
            metadata=meta,
            processing_options=opts,
            file_name=str(form.get("file_name") or "") or part.filename or None,
            deduplicate=not form_flag(form, "allow_duplicate"),
        )
    else:
        body = await json_body(request, limit)
        try:
            req = UploadRequest.model_validate(body)
        except ValidationError as exc:
            raise InvalidParameter(validation_message(exc)) from exc
        done = await _run(
            c,
            svc.submit,
            caller.tenant,
            req.document_type,
            file=req.file,
            content=req.content,
            metadata=req.metadata.as_dict(),
            processing_options=req.processing_options.as_dict(),
            file_name=req.file_name,
            deduplicate=not req.allow_duplicate,
        )
    if done.deduplicated:
        message = "文档已存在，重新处理" if done.reprocessing else "文档已存在，返回已有文档"
    else:
        message = "文档上传成功"
    return ok(present.upload_result(done.document, done.deduplicated, done.reprocessing), message)


async def _run(c, fn, *args, **kwargs):
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args, **kwargs)


@router.post("/documents/batch-upload", summary="Upload several documents; each succeeds or fails on its own")
async def batch_upload(request: Request, caller: Caller = Depends(upload_caller), c=Depends(container)):
    svc = c.documents
    body = await json_body(request, upload_body_limit(svc.max_upload_bytes) * BATCH_FACTOR)
    try:
        req = BatchUploadRequest.model_validate(body)
    except ValidationError as exc:
        raise InvalidParameter(validation_message(exc)) from exc
    items = [batch_item(raw, req.processing_options.as_dict()) for raw in req.documents]
    outcome = await _run(c, svc.upload_batch, caller.tenant, items)
    return ok(present.batch_outcome(outcome), "批量上传完成")


@router.post(
    "/documents/{document_id}/reprocess",
    summary="Run a document through the pipeline again (new processing options over its current ones)",
)
async def reprocess(
    document_id: str, request: Request, caller: Caller = Depends(upload_caller), c=Depends(container)
):
    empty = not (await request.body()).strip()  # no body: the current options again
    body = {} if empty else await json_body(request, 1024 * 1024)
    try:
        req = ReprocessRequest.model_validate(body)
    except ValidationError as exc:
        raise InvalidParameter(validation_message(exc)) from exc
    doc = await _run(c, c.documents.reprocess, caller.tenant, document_id, req.processing_options.as_dict())
    return ok(present.upload_result(doc), "文档重新处理中")


@router.get("/documents", summary="List documents with filters, paging and sorting")
def list_documents(
    page: int = Query(1, ge=1, le=1_000_000),  # as GET /qa/sessions: an offset SQLite can hold
    page_size: int = Query(20, ge=1, le=100),
    document_type: Literal["text", "image", "pdf", "mixed"] | None = None,
    category: str | None = None,
    tags: str | None = Query(None, description="comma-separated; a document matches if it has any of them"),
    keyword: str | None = Query(None, description="matches the title and the text"),
    sort_by: Literal["created_at", "updated_at", "title"] = "created_at",
    order: Literal["asc", "desc"] = "desc",
    caller: Caller = Depends(query_caller),
    c=Depends(container),
):
    tag_list = [t.strip() for t in (tags or "").split(",") if t.strip()]
    total, docs = c.documents.list(
        caller.tenant,
        document_type=document_type,
        category=category or None,
        tags=tag_list,
        keyword=keyword or None,
        sort_by=sort_by,
        order=order,
        page=page,
        page_size=page_size,
    )
    return ok(
        {
            "total": total,
            "page": page,
            "page_size": page_size,
            "documents": [present.document_summary(d) for d in docs],
        },
        "查询成功",
    )


@router.get("/documents/{document_id}", summary="A document with its chunks, images, status and processing stages")
def get_document(document_id: str, request: Request, caller: Caller = Depends(query_caller), c=Depends(container)):
    doc, chunks, images = c.documents.get(caller.tenant, document_id)
    return ok(present.document_detail(request, doc, chunks, images), "查询成功")


@router.put("/documents/{document_id}/metadata", summary="Update some metadata fields")
def update_metadata(
    document_id: str, body: MetadataUpdate, caller: Caller = Depends(query_caller), c=Depends(container)
):
    doc, fields = c.documents.update_metadata(caller.tenant, document_id, body.metadata.as_dict())
    return ok({"document_id": doc.document_id, "updated_fields": fields, "updated_at": doc.updated_at}, "更新成功")


@router.delete("/documents/{document_id}", summary="Delete a document with its chunks, images and vectors")
def delete_document(
    document_id: str, delete_related: bool = True, caller: Caller = Depends(query_caller), c=Depends(container)
):
    return ok(present.deletion(c.documents.delete(caller.tenant, document_id, delete_related)), "文档删除成功")


SIGNED = "with the API key, or with no key through the signed URL (`t`, `exp`, `sig`) the API returned"


@router.get("/images/{image_id}", summary="The image file", description=SIGNED)
def get_image(request: Request, image_id: str, caller: Caller = Depends(full_image_caller), c=Depends(container)):
    data, mime = c.documents.image(caller.tenant, image_id)
    return Response(data, media_type=mime, headers={"Cache-Control": _cache_control(request)})


@router.get(
    "/images/{image_id}/thumbnail", summary="A thumbnail of the image (PNG, longest side 256 px)", description=SIGNED
)
def get_thumbnail(request: Request, image_id: str, caller: Caller = Depends(thumbnail_caller), c=Depends(container)):
    data, mime = c.documents.image(caller.tenant, image_id, thumbnail=True)
    return Response(data, media_type=mime, headers={"Cache-Control": _cache_control(request)})


def _cache_control(request: Request) -> str:
    """A signed URL is cached no longer than it is valid."""
    expires = request.query_params.get("exp", "")
    if "sig" in request.query_params and expires.isdigit():
        return f"private, max-age={max(0, min(3600, int(expires) - int(time.time())))}"
    return "private, max-age=3600"
