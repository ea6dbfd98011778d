"""What the operator does for each TranscriptionJob: plan (list S3), dispatch (bounded
in flight), track progress, report status, and keep the job summary. Plain Python:
the Kubernetes, S3 and Serve clients are handed in."""
