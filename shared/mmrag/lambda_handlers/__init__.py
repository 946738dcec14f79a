"""The Lambda functions' handlers (template.yaml at the project root; functions/*.py re-export them): each parses its
event, calls the service container (mmrag.composition.aws, built once per process by `runtime`) and shapes the reply.

Importing this package (or any API handler in it) never imports the local machine-learning stack (fastembed,
onnxruntime, OpenCV, RapidOCR): the models live behind the SageMaker endpoint, OCR is Textract. Only the
container-image ingest function (MMRAG_OCR_ENGINE=rapidocr) loads RapidOCR.

Modules:
    runtime            the process-wide container, built lazily on the first invocation; a hook for tests
    api                the API functions' handler (FastAPI app through Mangum)
    stream_app         the ASGI app the streaming function runs under uvicorn (Lambda Web Adapter)
    authorizer         the REQUEST authorizer: Bearer key -> tenant, usage-plan key
    ingest             S3 (incoming/<tenant>/...) and job messages from SQS -> documents
    textract_complete  Textract completion (SNS -> SQS) -> the rest of the document's pipeline

The AWS pieces they use are adapters (mmrag.adapters.aws: api_routes, identity, incoming, ingest_jobs, ...); the key
admin of a deployed stack is a command (`python -m mmrag.cli.aws_keys`).
"""
