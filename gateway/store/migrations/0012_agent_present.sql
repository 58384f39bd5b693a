-- Presence that tells the truth (issue 31): `agents.status` is the status the agent chose
-- (online / away / offline), kept while they are away; `present` says whether some node
-- held a connection of theirs within PRESENCE_TTL. It is set by the presence write that
-- records a connection (`touch_presence`) and cleared by the expiry sweep of any node once
-- no presence row of the agent is fresher than PRESENCE_TTL (`expire_presence`); each flip
-- is made by one conditional UPDATE, so exactly one node announces it. A presence row with
-- 0 sockets is kept as the time the agent's last connection to that node ended.

ALTER TABLE agents ADD COLUMN present BOOLEAN NOT NULL DEFAULT FALSE;
