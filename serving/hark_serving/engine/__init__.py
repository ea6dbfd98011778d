"""The speech engine: audio in, recognized segments out.

`audio` decodes, `vad` finds speech, `pipeline` cuts and reassembles a file,
`recognition` holds the plain data a model batch takes and gives,
`sensevoice` runs the model (torch), `loading` and `model_source` find and load
it (`int8` quantizes and caches it, `encoder` is int8's leaner forward pass),
`packing` groups segments into model batches, `embedded` runs many files
through one in-process model, `priority` keeps preparing threads below the
model, and `factory` builds the parts from settings.

Nothing here imports Ray. Importing this package imports none of its modules,
so light callers (the HTTP edge) can take the plain data without torch.
"""
