-- Claiming due jobs: an ordered walk of the ready jobs, from where the worker's last claim
-- ended, that stops after the batch it needs — with the plan pinned.
--
-- The index holds the ready jobs in claim order with a unique tail (`id`), so that a claim can
-- start just after the last job the worker claimed (a row comparison on the index's columns,
-- an index condition) instead of at the head of the index. Claimed jobs leave their index
-- entries behind until vacuum; under a backlog every claim from the head walked over all of
-- them (thousands after a burst), which cost the database more than the jobs themselves
-- (bench/RESULTS.md). Priority is negated so that the whole key sorts one way.
CREATE INDEX jobs_ready_in_claim_order ON jobs ((-priority), run_at, id) WHERE state = 'ready';
DROP INDEX jobs_ready_by_priority;

-- The planner walks that index only when its statistics know how many jobs are ready. Right
-- after a burst of enqueues — when claims matter most — they do not yet (autovacuum analyzes
-- the table up to a minute later), and it chose to read and sort every ready job instead: 10 ms
-- per claim with 20,000 jobs ready instead of 0.1 ms. The function's SET clauses turn off the
-- plans that read the whole backlog, for the claim only; PL/pgSQL keeps the prepared plans for
-- the session. Without a position (`after_id` NULL) the walk starts at the head. Two statements,
-- not one with `after_id IS NULL OR (…) > (…)`: under the OR the row comparison would be a
-- filter, and the walk would start at the head every time.
CREATE FUNCTION claim_jobs(
    claim_queues text[],
    claim_worker text,
    claim_limit bigint,
    lease_until timestamptz,
    due_before timestamptz,
    after_priority smallint,
    after_run_at timestamptz,
    after_id uuid
) RETURNS TABLE (
    id uuid, queue text, name text, payload jsonb, attempts integer, max_attempts integer,
    priority smallint, run_at timestamptz
)
LANGUAGE plpgsql
SET enable_bitmapscan = off
SET enable_seqscan = off
AS $$
BEGIN
    IF after_id IS NULL THEN
        RETURN QUERY
        UPDATE jobs AS j
        SET state = 'running', attempts = j.attempts + 1, locked_until = lease_until, locked_by = claim_worker
        WHERE j.id IN (
            SELECT r.id FROM jobs AS r
            WHERE r.state = 'ready' AND r.run_at <= due_before AND r.queue = ANY (claim_queues)
            ORDER BY -r.priority, r.run_at, r.id
            LIMIT claim_limit
            -- SKIP LOCKED: concurrent workers take different rows instead of waiting.
            FOR UPDATE SKIP LOCKED
        )
        RETURNING j.id, j.queue, j.name, j.payload, j.attempts, j.max_attempts, j.priority, j.run_at;
    ELSE
        RETURN QUERY
        UPDATE jobs AS j
        SET state = 'running', attempts = j.attempts + 1, locked_until = lease_until, locked_by = claim_worker
        WHERE j.id IN (
            SELECT r.id FROM jobs AS r
            WHERE r.state = 'ready' AND r.run_at <= due_before AND r.queue = ANY (claim_queues)
              AND (-r.priority, r.run_at, r.id) > (-after_priority, after_run_at, after_id)
            ORDER BY -r.priority, r.run_at, r.id
            LIMIT claim_limit
            FOR UPDATE SKIP LOCKED
        )
        RETURNING j.id, j.queue, j.name, j.payload, j.attempts, j.max_attempts, j.priority, j.run_at;
    END IF;
END;
$$;
