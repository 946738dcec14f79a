"""The language of response messages: negotiated from Accept-Language per request, Chinese (the contract's) unless the
client prefers English. Routes keep writing the contract's Chinese; api/envelope.py translates through this table."""

from __future__ import annotations

from contextvars import ContextVar

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"

_language: ContextVar[str] = ContextVar("mmrag_response_language", default=DEFAULT_LANGUAGE)

# Success messages of the routes (the contract's Chinese) -> English.
SUCCESS_EN = {
    "操作成功": "Success",
    "文档上传成功": "Document uploaded",
    "批量上传完成": "Batch upload finished",
    "查询成功": "Query succeeded",
    "更新成功": "Updated",
    "文档删除成功": "Document deleted",
    "检索成功": "Search succeeded",
    "推荐成功": "Similar content found",
    "问答成功": "Answered",
    "会话删除成功": "Session deleted",
    "上传地址已生成": "Upload URL created",
    "服务正常": "Service is healthy",
    "服务启动中：正在加载模型": "Starting: loading the models",
    "部分组件异常": "Some components are unhealthy",
    "文档已存在，重新处理": "The document exists already; processing it again",
    "文档已存在，返回已有文档": "The document exists already; here it is",
    "文档重新处理中": "Processing the document again",
}

# Error codes (contract section 4.3) -> their description in each language.
ERRORS = {
    "INVALID_PARAMETER": {"zh": "参数错误", "en": "Invalid parameter"},
    "UNAUTHORIZED": {"zh": "未授权", "en": "Unauthorized"},
    "FORBIDDEN": {"zh": "禁止访问", "en": "Forbidden"},
    "NOT_FOUND": {"zh": "资源不存在", "en": "Not found"},
    "INTERNAL_ERROR": {"zh": "服务器内部错误", "en": "Internal server error"},
    "SERVICE_UNAVAILABLE": {"zh": "服务暂不可用", "en": "Service unavailable"},
    "RATE_LIMIT_EXCEEDED": {"zh": "请求频率超限", "en": "Rate limit exceeded"},
    "FILE_TOO_LARGE": {"zh": "文件过大", "en": "File too large"},
    "UNSUPPORTED_FORMAT": {"zh": "不支持的文件格式", "en": "Unsupported format"},
    "CONFLICT": {"zh": "资源状态冲突", "en": "Conflict with the resource's state"},
}


def negotiate(accept_language: str | None) -> str:
    """The supported language the client ranks highest in an Accept-Language header (RFC 9110 12.5.4), else the
    default. "zh-CN", "zh-Hant", "en-GB" count as zh / en; "*" means the default."""
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for item in (accept_language or "")[:1000].split(","):
        tag, _, params = item.strip().partition(";")
        q = _quality(params)
        primary = tag.strip().lower().split("-")[0]
        lang = DEFAULT_LANGUAGE if primary == "*" else primary
        if lang in LANGUAGES and q > best_q:  # strictly: of equal weights, the client's first wins
            best, best_q = lang, q
    return best


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def set_language(language: str) -> None:
    _language.set(language if language in LANGUAGES else DEFAULT_LANGUAGE)


def current_language() -> str:
    return _language.get()


def success_message(message: str) -> str:
    """A route's message in the negotiated language; "中文: details" keeps its details."""
    if current_language() != "en":
        return message
    if message in SUCCESS_EN:
        return SUCCESS_EN[message]
    head, sep, tail = message.partition(": ")
    return f"{SUCCESS_EN[head]}: {tail}" if sep and head in SUCCESS_EN else message


def error_message(code: str) -> str:
    texts = ERRORS.get(code) or ERRORS["INTERNAL_ERROR"]
    return texts[current_language()]
