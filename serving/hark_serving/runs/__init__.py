"""Runs: transcribing local folders and S3 prefixes into a destination (`local`), and one
S3 object into its outputs for the operator (`items`, with its request in `itemspec`)."""
