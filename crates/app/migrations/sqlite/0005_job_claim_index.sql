-- Claiming reads due ready jobs by priority, then age, across the worker's queues
-- (`queue = ANY(...)`). An index led by `queue` cannot give that order for a list of queues,
-- so every claim read and sorted the whole ready backlog (docs/queries.md); this one walks the
-- ready jobs in claim order and stops after the few it needs.
CREATE INDEX jobs_ready_by_priority ON jobs (priority DESC, run_at) WHERE state = 'ready';
DROP INDEX jobs_ready;
