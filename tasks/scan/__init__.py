"""The scan stage: every entry of a root, once, into scan shards.

stage.py is the entry (`scan_root`); columns.py the rows both backends produce, as columns
into Arrow batches; local.py the lstat walk of a folder (jobs in the process pool); objects.py
the listing of a bucket. This file imports nothing, so importing one piece does not import the
others.
"""
