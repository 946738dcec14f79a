"""Adapters: one implementation of each port per platform (local, aws)."""
