"""What `mmrag serve` prints before it starts: the address it really listens on, the data dir, where each model comes
from and which API keys work."""

from __future__ import annotations

from typing import Any

from mmrag import __version__
from mmrag.settings import Settings

ALL_INTERFACES = ("0.0.0.0", "::", "")


def url_for(host: str, port: int) -> str:
    """The URL a browser on this machine uses (a wildcard address is reached as loopback)."""
    shown = "127.0.0.1" if host in ALL_INTERFACES else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def banner(settings: Settings, container: Any, host: str, port: int) -> str:
    url = url_for(host, port)
    lines = [f"mmrag {__version__} on {url}  (API {url}/api/v1, interactive docs {url}/docs)"]
    if host in ALL_INTERFACES:
        lines.append(f"  listening on every interface ({host or '0.0.0.0'}) port {port}: reachable from other machines")
    if container.backend != "local":
        lines.append(f"  backend: {container.backend}")
        return "\n".join(lines)
    lines.append(f"  data dir: {settings.data_dir}")
    from mmrag.cli.models import configured_models

    source = container.model_source
    for m in configured_models(settings):
        lines.append(f"  {m.role}: {m.name} from {source.origin(m.kind, m.name)}")
    stored = sum(1 for k in container.key_store.list_keys() if not k.revoked)
    tenants = sorted(set(settings.bootstrap_keys.values()))
    keys = f"{len(settings.bootstrap_keys)} from MMRAG_API_KEYS"
    keys += f" (tenants {', '.join(tenants)})" if tenants else ""
    lines.append(f"  API keys: {keys}, {stored} created with `mmrag keys create`")
    if not settings.bootstrap_keys and not stored:
        lines.append("  no API key yet: `mmrag keys create --tenant default` prints one")
    lines.append("  check the setup: mmrag doctor; component status: GET /api/v1/health")
    return "\n".join(lines)
