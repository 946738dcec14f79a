"""API routers by endpoint group (documents, search, qa, sessions, health)."""
