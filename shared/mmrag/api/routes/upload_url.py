"""POST /api/v1/documents/upload-url: a presigned S3 PUT for files too large to send through API Gateway.

API Gateway caps a request at 10 MB (and a synchronous Lambda invocation at 6 MB, base64 included), so large files
go straight to S3: the client asks for an upload URL, PUTs the bytes to it with the headers the answer names, and
the object lands under incoming/<tenant>/, where the ingest function turns it into a document (its id shows up in
GET /api/v1/documents; the document's `metadata.source` is the object's s3:// URI). The URL is signed for exactly
`size` bytes of `content_type` and for the document type, metadata and processing options given here, so the
upload cannot change them; it expires after MMRAG_UPLOAD_URL_EXPIRES_S seconds (default 900).

Only the AWS deployment offers it (`adapters/aws/direct_uploads.py`); `mmrag serve` answers 503 and points at
POST /documents/upload.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from mmrag.api import present
from mmrag.api.deps import Caller, container, upload_caller
from mmrag.api.envelope import ok
from mmrag.api.schemas import DocumentMetadata, ProcessingOptions

router = APIRouter(prefix="/api/v1", tags=["documents"])


class UploadUrlRequest(BaseModel):
    file_name: str = Field(..., min_length=1, max_length=255, description="the file's name (becomes the title)")
    size: int = Field(..., gt=0, description="exact size of the file in bytes; the URL accepts only that many")
    content_type: str = Field("application/octet-stream", min_length=1, max_length=200)
    document_type: Literal["text", "image", "pdf", "mixed"] | None = Field(
        None, description="as in /documents/upload; omitted: detected from the file's bytes"
    )
    metadata: DocumentMetadata = Field(default_factory=DocumentMetadata)
    processing_options: ProcessingOptions = Field(default_factory=ProcessingOptions)


@router.post("/documents/upload-url", summary="A presigned S3 URL to PUT a large file to (AWS deployment only)")
def upload_url(body: UploadUrlRequest, caller: Caller = Depends(upload_caller), c=Depends(container)):
    signed = c.documents.direct_upload(
        caller.tenant,
        body.file_name,
        body.size,
        body.content_type,
        body.document_type,
        body.metadata.as_dict(),
        body.processing_options.as_dict(),
    )
    return ok(present.direct_upload(signed), "上传地址已生成")
