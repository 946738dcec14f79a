#!/usr/bin/env python3
"""Create mmrag's OpenSearch index and hybrid-search pipeline, from the adapter's own definitions.

    python infra/opensearch/create_index.py --endpoint https://search-mmrag-xxxx.eu-west-1.es.amazonaws.com \\
        --region eu-west-1 [--service es|aoss] [--index mmrag-items] [--analyzer smartcn|icu|standard]

Requests are SigV4-signed with boto3's credential chain. Without --region the endpoint is used as is (a
self-managed cluster; basic auth as https://user:pass@host:9200). --dry-run prints the bodies and sends nothing.
An existing index is left as it is (its mapping is not changed); the pipeline is created or replaced.
"""

from __future__ import annotations

import argparse
import json
import sys

from mmrag.adapters.aws.opensearch_index import ANALYZERS, ENGINES, OpenSearchVectorIndex
from mmrag.core.ranking import LEXICAL_WEIGHT


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Create mmrag's OpenSearch index (k-NN + analysers) and its hybrid search pipeline.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--endpoint", required=True, help="domain / collection endpoint URL")
    p.add_argument("--region", help="AWS region: sign requests with SigV4 (omit for a self-managed cluster)")
    p.add_argument("--service", choices=("es", "aoss"), default="es", help="es: OpenSearch Service, aoss: Serverless")
    p.add_argument("--index", default="mmrag-items")
    p.add_argument(
        "--analyzer",
        choices=ANALYZERS,
        default="smartcn",
        help="Chinese-capable analyzer of the text field; smartcn/icu need their analysis plugin, standard "
        "(standard tokenizer + CJK bigrams) works everywhere",
    )
    p.add_argument("--engine", choices=ENGINES, default="lucene", help="k-NN engine of the vector fields")
    p.add_argument("--text-dim", type=int, default=384, help="dimension of the text embedding space")
    p.add_argument("--clip-dim", type=int, default=512, help="dimension of the CLIP space")
    p.add_argument("--pipeline", default="mmrag-hybrid", help="search pipeline id ('' to skip it)")
    p.add_argument("--technique", choices=("min_max", "l2", "z_score", "rrf"), default="min_max")
    p.add_argument(
        "--weights",
        default=f"{LEXICAL_WEIGHT},{1 - LEXICAL_WEIGHT}",
        help="lexical,dense weights of the normalization processor (default: the service's own, mmrag.core.ranking)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the index and pipeline bodies, send nothing")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    weights = tuple(float(w) for w in args.weights.split(","))
    dims = {"text": args.text_dim, "clip": args.clip_dim}
    pipeline = OpenSearchVectorIndex.search_pipeline_body(args.technique, weights)
    if args.dry_run:
        body = OpenSearchVectorIndex(None, args.index, dims, analyzer=args.analyzer, engine=args.engine).index_body()
        print(json.dumps({"index": {args.index: body}, "search_pipeline": {args.pipeline: pipeline}}, indent=2))
        return 0

    from opensearchpy import TransportError

    from mmrag.adapters.aws.opensearch_client import make_client, make_local_client

    if args.region:
        client = make_client(args.endpoint, args.region, args.service, timeout=30)
    else:
        client = make_local_client(args.endpoint, timeout=30)
    index = OpenSearchVectorIndex(client, args.index, dims, analyzer=args.analyzer, engine=args.engine)
    try:
        created = index.ensure_index()
        print(f"index {args.index}: {'created' if created else 'already exists (left unchanged)'}")
        if args.pipeline:
            client.search_pipeline.put(id=args.pipeline, body=pipeline)
            print(
                f"search pipeline {args.pipeline}: {args.technique}"
                + ("" if args.technique == "rrf" else f" {weights}")
            )
    except TransportError as exc:
        info = exc.info if isinstance(exc.info, dict) else {}
        reason = (info.get("error") or {}).get("reason") if isinstance(info.get("error"), dict) else exc.info
        print(f"error: {exc.status_code} {exc.error}: {reason}", file=sys.stderr)
        if "tokenizer" in str(reason) or "analyzer" in str(reason):
            print("hint: the cluster lacks the analysis plugin; use --analyzer standard", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
