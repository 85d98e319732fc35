-- Seed Studio workspace, schema version 8: evaluations on a held-out file.
--
-- eval.split is 'file' for them. eval.source (JSON) records the file: {"kind": "file", "name", "sha256",
-- "format", "rows_read", "rows_used", "skipped", "problems", "overlap": {"same_row", "same_prompt"}, ...};
-- '{}' for a split. The upload is a temporary copy that vanishes, so the rows used are stored here, once,
-- at creation: a rerun of a stopped evaluation answers the same rows. overlap is '' or what the row
-- repeats of the run's training split ('same row as training', 'same prompt as training').

ALTER TABLE eval ADD COLUMN source TEXT NOT NULL DEFAULT '{}';

CREATE TABLE eval_row (
    id          INTEGER PRIMARY KEY,
    eval_id     INTEGER NOT NULL REFERENCES eval(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    format      TEXT NOT NULL,
    data        TEXT NOT NULL,
    overlap     TEXT NOT NULL DEFAULT '',
    UNIQUE (eval_id, position)
);

CREATE TRIGGER eval_row_frozen BEFORE UPDATE ON eval_row
BEGIN
    SELECT RAISE(ABORT, 'the rows of an evaluation are fixed when it is created: start a new evaluation instead');
END;
