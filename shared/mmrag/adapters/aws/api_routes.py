"""Every route of the HTTP API on AWS: which Lambda function serves it and which rate-limit class it counts against.

One table, three readers: the authorizer (rate-limit class -> usage-plan key), the template test (the template's API
events and the app's routes must both equal this table) and mmrag_dev's sandbox (which event file shows each route).
The classes are the contract's (section 6) and the ones mmrag.api.deps assigns: upload, query, search, qa; the
health check and the studio's static files have none (no key needed).
"""

from __future__ import annotations

from dataclasses import dataclass

ENDPOINT_CLASSES = ("upload", "query", "search", "qa")


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway resource path: {name} path parameters, as in FastAPI
    function: str  # logical id of the Lambda function in template.yaml
    endpoint_class: str | None  # None: no API key (health)
    event: str  # file in events/ with an API Gateway proxy event for this route


ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/v1/health", "DocumentsFunction", None, "health.json"),
    # the studio web app (mmrag/studio): static files, no key (the app asks for one and sends it to the API)
    Route("GET", "/", "DocumentsFunction", None, "studio_index.json"),
    Route("GET", "/studio/{file_path+}", "DocumentsFunction", None, "studio_file.json"),
    Route("POST", "/api/v1/documents/upload", "DocumentsFunction", "upload", "documents_upload.json"),
    Route("POST", "/api/v1/documents/batch-upload", "DocumentsFunction", "upload", "documents_batch_upload.json"),
    Route("POST", "/api/v1/documents/upload-url", "DocumentsFunction", "upload", "documents_upload_url.json"),
    Route("GET", "/api/v1/documents", "DocumentsFunction", "query", "documents_list.json"),
    Route("GET", "/api/v1/documents/{document_id}", "DocumentsFunction", "query", "documents_get.json"),
    Route("PUT", "/api/v1/documents/{document_id}/metadata", "DocumentsFunction", "query", "documents_metadata.json"),
    Route("DELETE", "/api/v1/documents/{document_id}", "DocumentsFunction", "query", "documents_delete.json"),
    Route(
        "POST", "/api/v1/documents/{document_id}/reprocess", "DocumentsFunction", "upload", "documents_reprocess.json"
    ),
    Route("GET", "/api/v1/images/{image_id}", "DocumentsFunction", "query", "images_get.json"),
    Route("GET", "/api/v1/images/{image_id}/thumbnail", "DocumentsFunction", "query", "images_thumbnail.json"),
    Route("POST", "/api/v1/search/text", "SearchFunction", "search", "search_text.json"),
    Route("POST", "/api/v1/search/image", "SearchFunction", "search", "search_image.json"),
    Route("POST", "/api/v1/search/multimodal", "SearchFunction", "search", "search_multimodal.json"),
    Route("POST", "/api/v1/search/similar", "SearchFunction", "search", "search_similar.json"),
    Route("GET", "/api/v1/me", "QaFunction", "query", "me.json"),  # the answer providers live here
    Route("POST", "/api/v1/qa/ask", "QaFunction", "qa", "qa_ask.json"),
    Route("POST", "/api/v1/qa/chat", "QaFunction", "qa", "qa_chat.json"),
    Route("POST", "/api/v1/qa/ask-stream", "AskStreamFunction", "qa", "qa_ask_stream.json"),
    Route("POST", "/api/v1/qa/chat-stream", "AskStreamFunction", "qa", "qa_chat_stream.json"),
    Route("GET", "/api/v1/qa/sessions", "SessionsFunction", "query", "sessions_list.json"),
    Route("GET", "/api/v1/qa/sessions/{session_id}", "SessionsFunction", "query", "sessions_get.json"),
    Route("DELETE", "/api/v1/qa/sessions/{session_id}", "SessionsFunction", "query", "sessions_delete.json"),
)

_BY_KEY = {(r.method, r.path): r for r in ROUTES}


def find(method: str, path: str) -> Route | None:
    """The route for an HTTP method and an API Gateway resource path ('/api/v1/documents/{document_id}')."""
    return _BY_KEY.get((method.upper(), path))


def usage_key_value(key_hash: str, endpoint_class: str) -> str:
    """The value of the API Gateway API key that counts one mmrag key's requests of one class.

    Clients never see or send it: the authorizer returns it as usageIdentifierKey (API key source AUTHORIZER), so it
    is derived from the stored key hash instead of being a second secret to store. One API key per class and mmrag
    key, each in its class's usage plan, is how one request counts against only its own class's limit.
    """
    if endpoint_class not in ENDPOINT_CLASSES:
        raise ValueError(f"unknown endpoint class {endpoint_class!r}")
    return f"mmrag-{endpoint_class}-{key_hash}"
