"""Embedded adapters: files on disk, SQLite, an in-process vector index, ONNX models, RapidOCR."""
