-- Seed Studio workspace, schema version 2: generation batches as resumable jobs.
--
-- A batch is planned as numbered work units (one teacher call, or one seed through nlpaug / entity
-- swap). A unit's candidate rows and its batch_unit row are written in one transaction, so after a
-- crash a unit is either wholly there or not at all: resume re-runs exactly the missing units.

ALTER TABLE batch ADD COLUMN job_id INTEGER REFERENCES job(id) ON DELETE SET NULL;
-- The seeds the batch draws from, frozen when it is planned, so a resume samples the same pool.
ALTER TABLE batch ADD COLUMN seed_ids TEXT NOT NULL DEFAULT '[]';
ALTER TABLE batch ADD COLUMN note TEXT NOT NULL DEFAULT '';
ALTER TABLE batch ADD COLUMN updated_at TEXT NOT NULL DEFAULT '';

CREATE TABLE batch_unit (
    id           INTEGER PRIMARY KEY,
    batch_id     INTEGER NOT NULL REFERENCES batch(id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    seed_ids     TEXT NOT NULL DEFAULT '[]',
    rows_ok      INTEGER NOT NULL DEFAULT 0,
    rows_failed  INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    UNIQUE (batch_id, idx)
);

ALTER TABLE candidate ADD COLUMN unit_idx INTEGER;
-- Why a row failed to parse, in plain words (empty when parse_status is 'ok').
ALTER TABLE candidate ADD COLUMN parse_error TEXT NOT NULL DEFAULT '';
-- What else the strategy knows about the row: answer style, augmenter, entity replacements.
ALTER TABLE candidate ADD COLUMN meta TEXT NOT NULL DEFAULT '{}';
CREATE INDEX candidate_batch_unit ON candidate(batch_id, unit_idx);

-- Progress in rows (done of total), the count at the last (re)start for the rate, and a heartbeat.
ALTER TABLE job ADD COLUMN done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job ADD COLUMN total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job ADD COLUMN start_done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job ADD COLUMN started_at TEXT NOT NULL DEFAULT '';
ALTER TABLE job ADD COLUMN heartbeat_at TEXT NOT NULL DEFAULT '';
ALTER TABLE job ADD COLUMN finished_at TEXT NOT NULL DEFAULT '';
CREATE INDEX job_status ON job(status);
