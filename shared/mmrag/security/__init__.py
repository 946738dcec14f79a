"""Security helpers: SSRF-safe fetching of user-supplied URLs."""
