"""mmrag: a multimodal RAG service (documents, hybrid search, answers) that runs locally or on AWS."""

__version__ = "0.1.0"
