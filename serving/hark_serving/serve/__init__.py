"""The Ray Serve application `hark` (docs/contracts.md §3, §7): the only package that imports Ray.

    app.py          build_app(args): Ingress → Worker → Transcriber
    ingress.py      Ingress deployment (FastAPI, CPU); routes in api.py
    worker.py       Worker deployment (CPU): decode, VAD, assemble, S3 items
    transcriber.py  Transcriber deployment (GPU): the model, batching segments (batcher.py)
    handles.py      calls between deployments: a replica gone is `Unavailable`, not the file's
    settings.py     ServeSettings (HARK_*), per-deployment options
    local.py        run the app on a local Ray instance (`hark serve`)

Pure parts, importable without Ray: api (routes), edge (auth, request ids,
metrics, error answers), auth, batches, context, errors, forms, messages,
metrics (each deployment's metrics, recorded through the Ray metrics API the
deployment passes in), openai_compat, priority (a local Ray's worker
niceness), uploads.
"""
