"""AWS adapters, the serverless twins of mmrag.adapters.local: S3 blobs and DynamoDB stores among them.

Each twin passes the same contract suites as its local counterpart (tests/contract). Clients are boto3 low-level
clients, passed in or created from the environment's region and credentials.
"""
