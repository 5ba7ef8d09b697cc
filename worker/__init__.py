"""Celery app and thin tasks: claim a job, run tricks.train, report through Redis."""
