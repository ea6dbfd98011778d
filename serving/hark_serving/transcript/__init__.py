"""The transcript: the `hark.transcript/v1` model and its JSON Schema, the model's tags,
the file summary, and the SRT, VTT and TXT renderings. Plain data, no torch, no Ray."""
