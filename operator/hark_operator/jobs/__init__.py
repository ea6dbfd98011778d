"""What the operator does for each TranscriptionJob: plan (list S3), dispatch (bounded
in flight), track progress, report status, keep the job summary and, for call
analytics, the QA reports and the alert outbox. Plain Python:
the Kubernetes, S3 and Serve clients are handed in."""
