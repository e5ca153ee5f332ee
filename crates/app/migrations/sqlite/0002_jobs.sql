-- The durable job queue (see outgrow_platform::jobs). Timestamps are RFC 3339 UTC text.
CREATE TABLE jobs (
    id            BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),  -- UUIDv7: newest-first listing by id
    queue         TEXT NOT NULL,
    name          TEXT NOT NULL,                                       -- the job kind
    payload       TEXT NOT NULL,                                       -- JSON
    priority      INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL CHECK (state IN ('ready', 'running', 'done', 'dead', 'cancelled')),
    attempts      INTEGER NOT NULL DEFAULT 0,                          -- runs started
    max_attempts  INTEGER NOT NULL,
    interruptions INTEGER NOT NULL DEFAULT 0,                          -- runs whose worker vanished
    run_at        TEXT NOT NULL,                                       -- not before
    locked_until  TEXT,                                                -- the lease, while running
    locked_by     TEXT,                                                -- the worker holding it
    last_error    TEXT,
    dedup_key     TEXT,
    created_at    TEXT NOT NULL,
    finished_at   TEXT
) STRICT;
-- Claiming: due ready jobs of a queue, by priority then age.
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at) WHERE state = 'ready';
-- The reaper: running jobs whose lease expired.
CREATE INDEX jobs_leases ON jobs (locked_until) WHERE state = 'running';
-- Deduplication: one pending job per key (enqueue uses ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX jobs_pending_dedup ON jobs (dedup_key) WHERE dedup_key IS NOT NULL AND state IN ('ready', 'running');
-- Operators list jobs by state.
CREATE INDEX jobs_by_state ON jobs (state, id);

-- Recurring schedules: the next due tick of each, advanced by compare-and-set.
CREATE TABLE recurring_jobs (
    name        TEXT PRIMARY KEY NOT NULL,
    next_run_at TEXT NOT NULL
) STRICT;
