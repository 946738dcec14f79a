"""The HTTP API: one FastAPI application for the local server and the Lambda functions."""
