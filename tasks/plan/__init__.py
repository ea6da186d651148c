"""The plan stage: a destination for every file, as data; nothing moves here.

stage.py is the entry (`plan_operation`: manifests in, plan shards out); facts.py what it reads,
as a DuckDB table; partition.py plans in parts (fast.py and copies.py in DuckDB, the rest by
the pure planner) exactly what planner.py, the pure planner and the reference, plans; with
layout.py (modes as templates), names.py (taken and free names), units.py (what moves as a
whole), albums.py, sidecars.py and reasons.py. This file imports nothing: the command line
imports layout.py to check a template, and should not load pyarrow and DuckDB for it.
"""
