"""tricklab's server side: state in Redis (job records and their status machine, metric
series, sweeps, API keys, the reuse index, telemetry, job logs) for the API and workers.

Key names are built in `keyspace` only; Lua scripts live in `lua/` and get every key
they touch through KEYS.
"""
