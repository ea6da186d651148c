"""The hash stage: which files have equal content, by a prefix pass and a full pass.

stage.py is the entry (`hash_shard`, and the work lists of worklists.py); columns.py hands a
work list's Arrow buffers to local.py, which reads files (in the process pool or in threads);
objects.py reads objects with GETs. This file imports nothing: the pool's
workers import local.py, and Python runs a package's __init__ first, so anything imported here
would load (pyarrow, DuckDB: 1.6 s and 100 MB) in every worker.
"""
