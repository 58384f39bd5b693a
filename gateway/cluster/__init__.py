"""One node among many: requests to other nodes over the broker (`noderpc.py`), and several
worker processes serving one node's port (WORKERS=N).

The supervisor (`supervisor.py`) starts N copies of the same command; each worker binds the
public port with SO_REUSEPORT, so the kernel spreads new connections across them, and is a
node of the multi-node design (PostgreSQL + Redis) with its own node id. Engine.IO sessions
live in one worker: their ids name it (`sids.py`), and a request for another worker's
session is handed to that worker with its connection (`handoff.py`).
"""
