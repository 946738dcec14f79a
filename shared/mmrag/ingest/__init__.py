"""Ingestion: format sniffing, image handling, document parsing and chunking."""
