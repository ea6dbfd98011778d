"""Clients at the bottom of the operator: the Kubernetes API, object storage, item processors, the alert webhook."""
