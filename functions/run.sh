#!/bin/sh
# AskStreamFunction's handler under the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap): uvicorn serves
# the mmrag app on 127.0.0.1:$PORT; the adapter forwards each invocation to it and streams the response back
# (AWS_LWA_INVOKE_MODE=response_stream). The mmrag package and its dependencies come from the layers in /opt/python.
PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}/opt/python:${LAMBDA_TASK_ROOT:-/var/task}" \
  exec python3 -m uvicorn mmrag.lambda_handlers.stream_app:app --host 127.0.0.1 --port "${PORT:-8080}" \
  --no-access-log --timeout-keep-alive 75
