"""Celery configuration (read by worker.celery_app via config_from_object).

Long training tasks: ack late, prefetch one, and re-deliver when a worker dies, so a
job is never lost with its message; the job record's fenced status machine
(tricklab.server.store) makes a late or duplicate delivery a no-op.
"""

from __future__ import annotations

from kombu import Queue

from tricklab.settings import get_settings

_s = get_settings()

broker_url = _s.redis_url
# Job state lives in the job record, not in Celery results; only the no-op benchmark
# task returns a value, so a result backend on the same Redis is cheap.
result_backend = _s.redis_url
result_expires = 3600
broker_connection_retry_on_startup = True
# Redis re-delivers an unacknowledged message after the visibility timeout; it must be
# longer than the longest job, or a running job would be delivered twice.
broker_transport_options = {"visibility_timeout": _s.max_job_seconds + 3600}
result_backend_transport_options = {"retry_policy": {"timeout": 5.0}}

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
# A lost broker connection must not kill a training run: the job's own lease (in the
# job record) decides who owns it, and the message is acked when the task ends.
worker_cancel_long_running_tasks_on_connection_loss = False
task_track_started = False
task_ignore_result = True

task_queues = (Queue("cpu"), Queue("gpu"))
task_default_queue = "cpu"
task_routes = {"tricklab.noop": {"queue": "cpu"}}

worker_hijack_root_logger = False
worker_send_task_events = False
