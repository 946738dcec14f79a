"""Large files PUT straight to storage: the use case checks size and options and hands the signed attributes to the
DirectUploads port (S3 presigning on AWS: tests/aws/test_functions.py); without one it is a clear 503."""

from __future__ import annotations

import pytest

from mmrag.core.models import DirectUpload
from mmrag.errors import FileTooLarge, InvalidParameter, ServiceUnavailable
from tests.fakes import CoreServices
from tests.fakes.services import MAX_UPLOAD_BYTES

T = "tenant-a"


class RecordingUploads:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def presign(self, tenant, file_name, size, content_type, attributes) -> DirectUpload:
        self.calls.append((tenant, file_name, size, content_type, attributes))
        return DirectUpload("upl_1", f"incoming/{tenant}/upl_1/{file_name}", "https://signed", "PUT", {}, 900, size)


def test_direct_upload_signs_type_metadata_and_options():
    s = CoreServices()
    uploads = s.documents.direct_uploads = RecordingUploads()
    signed = s.documents.direct_upload(T, "manual.pdf", 4_000_000, "application/pdf", "pdf", {"tags": ["a"]}, {})
    assert signed.key == "incoming/tenant-a/upl_1/manual.pdf" and signed.size == 4_000_000
    (tenant, name, size, ctype, attributes), = uploads.calls
    assert attributes == {"document_type": "pdf", "metadata": {"tags": ["a"], "title": "manual.pdf"},
                          "processing_options": {}}
    with pytest.raises(FileTooLarge):
        s.documents.direct_upload(T, "big.pdf", MAX_UPLOAD_BYTES + 1, "application/pdf", None, {}, {})
    with pytest.raises(InvalidParameter):
        s.documents.direct_upload(T, "x.pdf", 10, "application/pdf", None, {}, {"chunk_size": -1})
    assert len(uploads.calls) == 1


def test_without_direct_uploads_the_answer_points_at_the_upload_endpoint():
    with pytest.raises(ServiceUnavailable) as err:
        CoreServices().documents.direct_upload(T, "a.pdf", 10, "application/pdf", None, {}, {})
    assert "POST /api/v1/documents/upload" in str(err.value.detail)
