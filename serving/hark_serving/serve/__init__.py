"""The Ray Serve application `hark` (DESIGN.md §3, §7): the only package that imports Ray.

    app.py          build_app(args): Ingress → Worker → Transcriber
    ingress.py      Ingress deployment (FastAPI, CPU); routes in api.py
    worker.py       Worker deployment (CPU): decode, VAD, assemble, S3 items
    transcriber.py  Transcriber deployment (GPU): the model, @serve.batch over segments
    settings.py     ServeSettings (HARK_*), per-deployment options

Pure parts, importable without Ray: api, auth, batches, errors, forms,
messages, metrics, openai_compat, uploads, context.
"""
