"""AWS adapters: S3 for blobs, DynamoDB for documents, jobs, API keys and chat sessions.

Each is the twin of an adapter in mmrag.adapters.local and passes the same contract suites (tests/contract).
Clients are plain boto3 low-level clients, passed in or created from the environment's region and credentials.
"""
