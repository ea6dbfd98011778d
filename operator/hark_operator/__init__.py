"""Hark's control plane: the TranscriptionJob resource, planning, dispatch and GPU pool scaling."""
