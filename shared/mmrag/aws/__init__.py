"""Lambda glue: the entry points that run the mmrag app and pipeline on AWS (template.yaml at the project root).

Importing this package (or any API entry point in it) never imports the local machine-learning stack (fastembed,
onnxruntime, OpenCV, RapidOCR): the models live behind the SageMaker endpoint, OCR is Textract. Only the
container-image ingest function (MMRAG_OCR_ENGINE=rapidocr) loads RapidOCR.

Modules:
    config             the AWS settings (MMRAG_*), read from Settings when it has them, else from the environment
    routes             every API route: its method, path, Lambda function and rate-limit class
    identity           the tenant from the API Gateway authorizer's context (trusted only behind the authorizer)
    runtime            the process-wide container, built lazily on the first invocation; a hook for tests
    api                the API functions' handler (FastAPI app through Mangum)
    stream_app         the ASGI app the streaming function runs under uvicorn (Lambda Web Adapter)
    authorizer         the REQUEST authorizer: Bearer key -> tenant, usage-plan key
    incoming           keys and metadata of objects under incoming/<tenant>/ (S3 drops and upload URLs)
    jobs               API uploads -> SQS job messages; running a job; the Textract split for scanned PDFs
    ingest             S3 (incoming/<tenant>/...) and job messages from SQS -> documents
    textract_complete  Textract completion (SNS -> SQS) -> the rest of the document's pipeline
    keys_admin         `python -m mmrag.aws.keys_admin`: create / revoke API keys of a deployed stack
"""
