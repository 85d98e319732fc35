-- Seed Studio workspace, schema version 1.
-- The entities of the design sketch. Tables used by later stages (prompt_version .. job) are
-- created now so that every stage writes into one schema; later migrations add columns as needed.
-- Timestamps are ISO-8601 UTC text. JSON columns hold JSON text.

CREATE TABLE project (
    id                INTEGER PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE COLLATE NOCASE,
    task_description  TEXT NOT NULL DEFAULT '',
    base_model_ref    TEXT NOT NULL DEFAULT '',
    teacher_ref       TEXT NOT NULL DEFAULT '',
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

-- A human-written example. `format` is one of: alpaca, prompt_completion, messages,
-- classification, ner. `data` holds the canonical fields of that format; `meta` keeps the
-- other columns of the source row (ids, names) so nothing the user uploaded is dropped.
CREATE TABLE seed (
    id            INTEGER PRIMARY KEY,
    project_id    INTEGER NOT NULL REFERENCES project(id) ON DELETE CASCADE,
    format        TEXT NOT NULL,
    data          TEXT NOT NULL,
    meta          TEXT NOT NULL DEFAULT '{}',
    content_key   TEXT NOT NULL,
    source        TEXT NOT NULL DEFAULT '',
    source_row    INTEGER,
    import_id     INTEGER REFERENCES seed_import(id) ON DELETE SET NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX seed_project ON seed(project_id);
CREATE INDEX seed_content ON seed(project_id, content_key);

-- One upload that landed: where it came from and what was skipped, for the audit trail.
CREATE TABLE seed_import (
    id            INTEGER PRIMARY KEY,
    project_id    INTEGER NOT NULL REFERENCES project(id) ON DELETE CASCADE,
    source        TEXT NOT NULL,
    format        TEXT NOT NULL,
    mapping       TEXT NOT NULL DEFAULT '{}',
    rows_read     INTEGER NOT NULL,
    rows_imported INTEGER NOT NULL,
    rows_skipped  INTEGER NOT NULL,
    created_at    TEXT NOT NULL
);

CREATE TABLE prompt_version (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES project(id) ON DELETE CASCADE,
    strategy    TEXT NOT NULL,
    version     INTEGER NOT NULL,
    template    TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    parent_id   INTEGER REFERENCES prompt_version(id),
    created_at  TEXT NOT NULL,
    UNIQUE (project_id, strategy, version)
);

CREATE TABLE batch (
    id                 INTEGER PRIMARY KEY,
    project_id         INTEGER NOT NULL REFERENCES project(id) ON DELETE CASCADE,
    strategy           TEXT NOT NULL,
    prompt_version_id  INTEGER REFERENCES prompt_version(id),
    teacher            TEXT NOT NULL DEFAULT '{}',
    params             TEXT NOT NULL DEFAULT '{}',
    target_count       INTEGER NOT NULL DEFAULT 0,
    status             TEXT NOT NULL DEFAULT 'pending',
    created_at         TEXT NOT NULL
);

CREATE TABLE candidate (
    id              INTEGER PRIMARY KEY,
    batch_id        INTEGER NOT NULL REFERENCES batch(id) ON DELETE CASCADE,
    format          TEXT NOT NULL,
    data            TEXT,
    seed_ids        TEXT NOT NULL DEFAULT '[]',
    raw_output      TEXT NOT NULL DEFAULT '',
    parse_status    TEXT NOT NULL DEFAULT 'ok',
    decoding_params TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL
);
CREATE INDEX candidate_batch ON candidate(batch_id);

CREATE TABLE filter_result (
    id            INTEGER PRIMARY KEY,
    candidate_id  INTEGER NOT NULL REFERENCES candidate(id) ON DELETE CASCADE,
    filter        TEXT NOT NULL,
    passed        INTEGER NOT NULL,
    score         REAL,
    reason        TEXT NOT NULL DEFAULT '',
    params        TEXT NOT NULL DEFAULT '{}',
    created_at    TEXT NOT NULL,
    UNIQUE (candidate_id, filter)
);

CREATE TABLE review (
    id            INTEGER PRIMARY KEY,
    candidate_id  INTEGER NOT NULL REFERENCES candidate(id) ON DELETE CASCADE,
    reviewer      TEXT NOT NULL DEFAULT '',
    verdict       TEXT NOT NULL,
    reason_tags   TEXT NOT NULL DEFAULT '[]',
    edited_data   TEXT,
    accuracy      INTEGER,
    tone          INTEGER,
    note          TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL
);
CREATE INDEX review_candidate ON review(candidate_id);

CREATE TABLE dataset_version (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES project(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    splits      TEXT NOT NULL,
    stats       TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE run (
    id                  INTEGER PRIMARY KEY,
    project_id          INTEGER NOT NULL REFERENCES project(id) ON DELETE CASCADE,
    dataset_version_id  INTEGER REFERENCES dataset_version(id),
    base_model_ref      TEXT NOT NULL,
    method              TEXT NOT NULL,
    config              TEXT NOT NULL DEFAULT '{}',
    status              TEXT NOT NULL DEFAULT 'queued',
    pid                 INTEGER,
    output_dir          TEXT NOT NULL DEFAULT '',
    last_checkpoint     TEXT NOT NULL DEFAULT '',
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);

CREATE TABLE run_metric (
    id      INTEGER PRIMARY KEY,
    run_id  INTEGER NOT NULL REFERENCES run(id) ON DELETE CASCADE,
    step    INTEGER NOT NULL,
    split   TEXT NOT NULL,
    name    TEXT NOT NULL,
    value   REAL NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX run_metric_run ON run_metric(run_id, name, step);

CREATE TABLE eval (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES run(id) ON DELETE CASCADE,
    split       TEXT NOT NULL,
    metrics     TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL
);

CREATE TABLE vote (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES run(id) ON DELETE CASCADE,
    prompt      TEXT NOT NULL,
    choice      TEXT NOT NULL,
    voter       TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
);

CREATE TABLE publication (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES project(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    subject_id  INTEGER NOT NULL,
    repo_id     TEXT NOT NULL,
    revision    TEXT NOT NULL DEFAULT '',
    url         TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
);

CREATE TABLE job (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER REFERENCES project(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    subject_id  INTEGER,
    status      TEXT NOT NULL DEFAULT 'queued',
    progress    REAL NOT NULL DEFAULT 0,
    message     TEXT NOT NULL DEFAULT '',
    log_path    TEXT NOT NULL DEFAULT '',
    pid         INTEGER,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Small named values that belong to the workspace (the CLI's current project, for one).
CREATE TABLE setting (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
