"""Dataset ingest: uploads parsed from disk with bounded memory into the stored layout.

numpy (+ pyarrow, Pillow) only, never torch: the API imports this package.
`tricks.uploads` re-exports what other code imports (open_stored, stored_bytes, ...).
"""
