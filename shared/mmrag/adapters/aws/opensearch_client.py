"""opensearch-py clients: SigV4-signed for Amazon OpenSearch Service ("es") and OpenSearch Serverless ("aoss"), or
plain for a local / self-managed URL.

Signing uses opensearch-py's own `Urllib3AWSV4SignerAuth` (botocore's SigV4 underneath) with the default
`Urllib3HttpConnection`: every request, body included, is signed afresh, and refreshable credentials (a Lambda role)
are frozen per request. urllib3 ignores HTTP(S)_PROXY variables, so a loopback URL is never sent through a proxy.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from opensearchpy import OpenSearch, Urllib3AWSV4SignerAuth, Urllib3HttpConnection

SERVICES = ("es", "aoss")


def make_client(
    endpoint: str,
    region: str,
    service: str = "es",
    credentials: Any = None,
    *,
    timeout: float = 10.0,
    max_retries: int = 2,
    pool_maxsize: int = 16,
) -> OpenSearch:
    """A client for https://<domain or collection endpoint>, signed with SigV4 for `service` in `region`.

    credentials: botocore credentials (anything with access_key/secret_key/token); default: boto3's chain.
    """
    if service not in SERVICES:
        raise ValueError(f"service must be one of {SERVICES}, not {service!r}")
    if not region:
        raise ValueError("region is required for SigV4")
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"SigV4 endpoints are https URLs, not {endpoint!r}")
    if credentials is None:
        import boto3

        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise RuntimeError("no AWS credentials found for OpenSearch (boto3 credential chain is empty)")
    return OpenSearch(
        hosts=[{"host": parts.hostname, "port": parts.port or 443, "scheme": "https"}],
        http_auth=Urllib3AWSV4SignerAuth(credentials, region, service),
        use_ssl=True,
        verify_certs=True,
        connection_class=Urllib3HttpConnection,
        timeout=timeout,
        max_retries=max_retries,
        retry_on_timeout=True,
        pool_maxsize=pool_maxsize,
    )


def make_local_client(url: str, *, timeout: float = 10.0, pool_maxsize: int = 16) -> OpenSearch:
    """A client without AWS auth (`http://127.0.0.1:9200`, or `https://user:pass@host:9200`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return OpenSearch(
        hosts=[url],
        connection_class=Urllib3HttpConnection,
        timeout=timeout,
        max_retries=0,
        pool_maxsize=pool_maxsize,
    )
