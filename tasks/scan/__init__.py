"""The scan stage: every entry of a root, once, into scan shards.

stage.py is the entry (`scan_root`); entry.py the row both backends produce; local.py the lstat
walk of a folder; objects.py the listing of a bucket. This file imports nothing, so importing
one piece does not import the others.
"""
