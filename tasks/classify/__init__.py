"""The classify stage: a category and a date for every file of a scan shard.

stage.py is the entry (`classify_shard`, with the reuse of the last operation's answers);
content.py says what a file's name and first bytes tell; local.py reads files in the process
pool; objects.py reads object heads with ranged GETs; categories.py, dates.py and tags.py are
the rules. This file imports nothing: the pool's workers import local.py, and Python runs a
package's __init__ first.
"""
