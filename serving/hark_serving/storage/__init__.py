"""Where audio comes from and transcripts go: S3-compatible object stores and local folders.

Light on purpose (boto3 only): the operator imports it to plan work.
"""
