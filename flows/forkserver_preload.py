"""What the runner's forkserver (flows.warm_starts) makes once, before its first fork, so that
no run's fork makes it again: the flows imported, and the TLS context Prefect's clients verify
with (flows.prefect_costs.warm: 40-120 ms of every run before it is Running otherwise, at load
5-10, as the first client of each child built it). multiprocessing's preload only imports
modules, so this one does its work as it is imported: the forkserver is all that imports it.
"""

from __future__ import annotations

from flows import apply, organize, prefect_costs

FLOWS = (organize.organize_flow, apply.apply_plan_flow, apply.rollback_flow)
prefect_costs.warm()
