-- The retention clean-up deletes finished jobs by age.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('done', 'cancelled');
