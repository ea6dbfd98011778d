"""The TranscriptionJob resource: its spec and status models, and the CRD manifest."""
