-- Seed Studio workspace, schema version 3: filters, judge scores, review samples, the gate,
-- selected rows and frozen dataset versions.
--
-- Nothing here deletes a generated row: filters, verdicts and gate decisions are marks with reasons,
-- so the audit trail survives and a decision can be undone.

-- The filter settings a batch was last filtered with (JSON) and when.
ALTER TABLE batch ADD COLUMN filter_config TEXT NOT NULL DEFAULT '';
ALTER TABLE batch ADD COLUMN filtered_at TEXT NOT NULL DEFAULT '';

-- LLM-as-judge scores (1-5) with a rationale; a candidate may be judged again, the newest row counts.
CREATE TABLE judgement (
    id                     INTEGER PRIMARY KEY,
    candidate_id           INTEGER NOT NULL REFERENCES candidate(id) ON DELETE CASCADE,
    judge                  TEXT NOT NULL DEFAULT '{}',
    accuracy               INTEGER,
    tone                   INTEGER,
    instruction_following  INTEGER,
    overall                REAL,
    rationale              TEXT NOT NULL DEFAULT '',
    raw_output             TEXT NOT NULL DEFAULT '',
    parse_status           TEXT NOT NULL DEFAULT 'ok',
    created_at             TEXT NOT NULL
);
CREATE INDEX judgement_candidate ON judgement(candidate_id, id);

-- A reproducible random sample of a batch's rows put in front of reviewers. It can grow (an
-- inconclusive gate asks for more reviews): new items get the next positions.
CREATE TABLE review_sample (
    id          INTEGER PRIMARY KEY,
    batch_id    INTEGER NOT NULL REFERENCES batch(id) ON DELETE CASCADE,
    rng_seed    INTEGER NOT NULL,
    fraction    REAL NOT NULL,
    min_size    INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX review_sample_batch ON review_sample(batch_id);

CREATE TABLE review_item (
    id            INTEGER PRIMARY KEY,
    sample_id     INTEGER NOT NULL REFERENCES review_sample(id) ON DELETE CASCADE,
    candidate_id  INTEGER NOT NULL REFERENCES candidate(id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    stratum       TEXT NOT NULL DEFAULT '',
    UNIQUE (sample_id, candidate_id),
    UNIQUE (sample_id, position)
);

-- Verdicts are appended, never updated: two reviewers never overwrite each other, and a changed mind
-- is a newer row. The newest row of each (candidate, reviewer) counts.
ALTER TABLE review ADD COLUMN sample_id INTEGER REFERENCES review_sample(id) ON DELETE SET NULL;
CREATE INDEX review_candidate_reviewer ON review(candidate_id, reviewer, id);

-- Every gate evaluation that was applied (pass / fail / inconclusive), for the audit trail.
CREATE TABLE gate_decision (
    id          INTEGER PRIMARY KEY,
    batch_id    INTEGER NOT NULL REFERENCES batch(id) ON DELETE CASCADE,
    decision    TEXT NOT NULL,
    reviewed    INTEGER NOT NULL,
    errors      INTEGER NOT NULL,
    rate        REAL,
    low         REAL,
    high        REAL,
    threshold   REAL NOT NULL,
    confidence  REAL NOT NULL,
    details     TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL
);
CREATE INDEX gate_decision_batch ON gate_decision(batch_id, id);

-- Rows chosen from a batch that passed its gate; `data` is the reviewer's edit where there was one.
CREATE TABLE selection (
    id            INTEGER PRIMARY KEY,
    batch_id      INTEGER NOT NULL REFERENCES batch(id) ON DELETE CASCADE,
    candidate_id  INTEGER NOT NULL REFERENCES candidate(id) ON DELETE CASCADE,
    data          TEXT NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    score         REAL,
    created_at    TEXT NOT NULL,
    UNIQUE (candidate_id)
);
CREATE INDEX selection_batch ON selection(batch_id);

-- A prompt version drafted from a failed batch's review remembers that batch.
ALTER TABLE prompt_version ADD COLUMN source_batch_id INTEGER REFERENCES batch(id) ON DELETE SET NULL;

-- Dataset versions hold a copy of every row (not just ids): editing or deleting a seed later never
-- changes a frozen version. The triggers make the copy read-only.
ALTER TABLE dataset_version ADD COLUMN family TEXT NOT NULL DEFAULT '';
ALTER TABLE dataset_version ADD COLUMN config TEXT NOT NULL DEFAULT '{}';

CREATE TABLE dataset_row (
    id          INTEGER PRIMARY KEY,
    version_id  INTEGER NOT NULL REFERENCES dataset_version(id) ON DELETE CASCADE,
    split       TEXT NOT NULL,
    position    INTEGER NOT NULL,
    origin      TEXT NOT NULL,
    source_id   INTEGER,
    format      TEXT NOT NULL,
    data        TEXT NOT NULL,
    UNIQUE (version_id, split, position)
);
CREATE INDEX dataset_row_version ON dataset_row(version_id, split, position);

CREATE TRIGGER dataset_row_frozen BEFORE UPDATE ON dataset_row
BEGIN
    SELECT RAISE(ABORT, 'dataset versions are frozen: freeze a new version instead');
END;

CREATE TRIGGER dataset_version_frozen BEFORE UPDATE OF splits, family, config, project_id ON dataset_version
BEGIN
    SELECT RAISE(ABORT, 'dataset versions are frozen: freeze a new version instead');
END;
