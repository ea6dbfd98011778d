"""The Ray Serve application `hark` (its HTTP API is listed in docs/cli.md): the only package that imports Ray.

    app.py          build_app(args): Ingress → Worker → Transcriber
    ingress.py      Ingress deployment (FastAPI, CPU); routes in api.py
    worker.py       Worker deployment (CPU): decode, VAD, assemble, S3 items
    transcriber.py  Transcriber deployment (GPU): the model, @serve.batch over segments
    settings.py     ServeSettings (HARK_*), per-deployment options
    local.py        run the app on a local Ray instance (`hark serve`)

Pure parts, importable without Ray: api (routes), edge (auth, request ids,
metrics, error answers), auth, batches, context, errors, forms, messages,
metrics, openai_compat, priority (CPU priority of the Worker's threads), uploads.
"""
