-- Claiming due jobs, with its plan pinned: an ordered walk of `jobs_ready_by_priority` that
-- stops after the batch it needs (migration 0005). The planner picks that plan only when its
-- statistics know how many jobs are ready. Right after a burst of enqueues — when claims matter
-- most — they do not yet (autovacuum analyzes the table up to a minute later), and it chose to
-- read and sort every ready job instead: 10 ms per claim with 20,000 jobs ready instead of
-- 0.1 ms, and the database's CPU, not the handlers, bounded the drain rate (bench/RESULTS.md).
-- The function's SET clauses turn off the plans that read the whole backlog for the claim
-- only; PL/pgSQL keeps the prepared plan for the session.
CREATE FUNCTION claim_jobs(
    claim_queues text[],
    claim_worker text,
    claim_limit bigint,
    lease_until timestamptz,
    due_before timestamptz
) RETURNS TABLE (id uuid, queue text, name text, payload jsonb, attempts integer, max_attempts integer)
LANGUAGE plpgsql
SET enable_bitmapscan = off
SET enable_seqscan = off
AS $$
BEGIN
    RETURN QUERY
    UPDATE jobs AS j
    SET state = 'running', attempts = j.attempts + 1, locked_until = lease_until, locked_by = claim_worker
    WHERE j.id IN (
        SELECT r.id FROM jobs AS r
        WHERE r.state = 'ready' AND r.run_at <= due_before AND r.queue = ANY (claim_queues)
        ORDER BY r.priority DESC, r.run_at
        LIMIT claim_limit
        -- SKIP LOCKED: concurrent workers take different rows instead of waiting.
        FOR UPDATE SKIP LOCKED
    )
    RETURNING j.id, j.queue, j.name, j.payload, j.attempts, j.max_attempts;
END;
$$;
