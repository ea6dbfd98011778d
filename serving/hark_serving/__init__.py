"""Hark's data plane: audio, VAD, the model, the result schema, storage, the Serve app and the CLI."""
