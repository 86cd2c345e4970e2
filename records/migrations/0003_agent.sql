-- records v3: the voice-AI agent's part of a call (agent.mode first or fallback): whether
-- the call was offered to the agent, how long the caller was bridged to it, and the
-- intent of the transfer it asked for (rule:NAME, staff:NAME, extension:N; '' = none).

ALTER TABLE call_records ADD COLUMN agent INTEGER NOT NULL DEFAULT 0 CHECK (agent IN (0, 1));
ALTER TABLE call_records ADD COLUMN agent_ms INTEGER NOT NULL DEFAULT 0 CHECK (agent_ms >= 0);
ALTER TABLE call_records ADD COLUMN agent_transfer TEXT NOT NULL DEFAULT '';
