-- Seed Studio workspace, schema version 7: diversity plans.
--
-- A plan says what a batch should cover: topics and attributes (persona, difficulty, ...), each value
-- with a weight. Like prompts, plans are versions: every save is a new row, none is overwritten, and a
-- batch records the plan (and its version) it sampled from in its params. plan is JSON:
-- {"topics": [{"value": str, "weight": float}], "attributes": {"persona": [{"value": .., "weight": ..}]}}.

CREATE TABLE diversity_plan (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES project(id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    plan        TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    UNIQUE (project_id, version)
);
