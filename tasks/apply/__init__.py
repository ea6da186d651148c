"""The apply stage: the plan carried out, journaled, resumable, undoable; the only side effects.

stage.py is the entry (`apply_shard`, `rollback_one`, the folder steps around them) and picks
the root's backend once; items.py the one Item both backends carry out; engine.py the one
journaled batch / resume loop over the Mover it is handed; rollback.py the undo of a journal.
local.py (with local_recovery.py, folders.py, dirs.py and fsops.py) changes a folder;
objects.py a bucket. This file imports nothing, so importing one piece (the crash tests'
workers import fsops.py) does not import the others.
"""
