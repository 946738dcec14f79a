"""Developer tools for the AWS side, never deployed: the Docker-free stand-in for `sam local invoke`.

    python -m mmrag_dev.invoke SearchFunction events/search_text.json --seed     (or: make invoke FN=... EVENT=...)

It runs any function of template.yaml with an event from events/ in this process, against moto and local stand-ins:
- template.py  reads template.yaml (CloudFormation's short-form tags, parameters, conditions, intrinsics, functions);
- fakes.py     what moto lacks: the SageMaker encoder endpoint, the OpenSearch server, Textract's text, the context;
- sandbox.py   the environment: moto with the template's resources, the stand-ins, and running a function's handler;
- events.py    loading the event files and building or patching Lambda events (API Gateway, SQS, S3 notifications);
- seed.py      sample data: the documents, picture, chat session and Textract job an event refers to;
- invoke.py    the command line.

It needs the dev extra (moto, PyYAML) and a source checkout: it reads template.yaml, events/ and functions/ next to
shared/, and the fake OpenSearch server from tests/aws/opensearch_fake.py.
"""
