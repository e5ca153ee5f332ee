-- The durable job queue (see outgrow_platform::jobs).
CREATE TABLE jobs (
    id            uuid PRIMARY KEY,              -- UUIDv7: newest-first listing by id
    queue         text NOT NULL,
    name          text NOT NULL,                 -- the job kind
    payload       jsonb NOT NULL,
    priority      smallint NOT NULL DEFAULT 0,
    state         text NOT NULL CHECK (state IN ('ready', 'running', 'done', 'dead', 'cancelled')),
    attempts      integer NOT NULL DEFAULT 0,    -- runs started
    max_attempts  integer NOT NULL,
    interruptions integer NOT NULL DEFAULT 0,    -- runs whose worker vanished
    run_at        timestamptz NOT NULL,          -- not before
    locked_until  timestamptz,                   -- the lease, while running
    locked_by     text,                          -- the worker holding it
    last_error    text,
    dedup_key     text,
    created_at    timestamptz NOT NULL,
    finished_at   timestamptz
);
-- Claiming (FOR UPDATE SKIP LOCKED): due ready jobs of a queue, by priority then age.
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at) WHERE state = 'ready';
-- The reaper: running jobs whose lease expired.
CREATE INDEX jobs_leases ON jobs (locked_until) WHERE state = 'running';
-- Deduplication: one pending job per key (enqueue uses ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX jobs_pending_dedup ON jobs (dedup_key) WHERE dedup_key IS NOT NULL AND state IN ('ready', 'running');
-- Operators list jobs by state.
CREATE INDEX jobs_by_state ON jobs (state, id);

-- Recurring schedules: the next due tick of each, advanced by compare-and-set.
CREATE TABLE recurring_jobs (
    name        text PRIMARY KEY,
    next_run_at timestamptz NOT NULL
);
