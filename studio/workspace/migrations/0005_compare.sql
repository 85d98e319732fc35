-- Seed Studio workspace, schema version 5: Compare (batch evaluations, blind A/B votes, ablations).
--
-- eval: one batch evaluation of a run (tuned) against its base model on one split of a dataset
-- version. status: queued -> running -> done | failed | stopped | interrupted (its job row says why).
-- metrics: {"n", "rows": [{metric, base, tuned, delta}], "loss": {base, tuned}, "perplexity": {...},
-- "judge": {...} | null}; examples: per-example predictions and scores, largest change first.

ALTER TABLE eval ADD COLUMN project_id INTEGER REFERENCES project(id) ON DELETE CASCADE;
ALTER TABLE eval ADD COLUMN dataset_version_id INTEGER REFERENCES dataset_version(id) ON DELETE SET NULL;
ALTER TABLE eval ADD COLUMN base_model_ref TEXT NOT NULL DEFAULT '';
ALTER TABLE eval ADD COLUMN status TEXT NOT NULL DEFAULT 'done';
ALTER TABLE eval ADD COLUMN config TEXT NOT NULL DEFAULT '{}';
ALTER TABLE eval ADD COLUMN examples TEXT NOT NULL DEFAULT '[]';
ALTER TABLE eval ADD COLUMN message TEXT NOT NULL DEFAULT '';
ALTER TABLE eval ADD COLUMN job_id INTEGER REFERENCES job(id) ON DELETE SET NULL;
ALTER TABLE eval ADD COLUMN finished_at TEXT NOT NULL DEFAULT '';
CREATE INDEX eval_run ON eval(run_id, split);

-- vote: one blind A/B verdict. choice is the model the person preferred once A/B is resolved
-- ('base' | 'tuned' | 'tie'); shown_a records which model was shown as A, the answers what was seen.
ALTER TABLE vote ADD COLUMN base_model_ref TEXT NOT NULL DEFAULT '';
ALTER TABLE vote ADD COLUMN shown_a TEXT NOT NULL DEFAULT '';
ALTER TABLE vote ADD COLUMN pick TEXT NOT NULL DEFAULT '';
ALTER TABLE vote ADD COLUMN base_answer TEXT NOT NULL DEFAULT '';
ALTER TABLE vote ADD COLUMN tuned_answer TEXT NOT NULL DEFAULT '';
ALTER TABLE vote ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
CREATE INDEX vote_run ON vote(run_id);

-- ablation: the same training config run twice, on seeds only and on seeds + accepted synthetic rows.
-- Both versions share the seed split (same fractions and rng seed), so validation and the human test
-- rows are the same and the two runs' numbers compare directly.
CREATE TABLE ablation (
    id                  INTEGER PRIMARY KEY,
    project_id          INTEGER NOT NULL REFERENCES project(id) ON DELETE CASCADE,
    source_version_id   INTEGER NOT NULL REFERENCES dataset_version(id),
    seeds_version_id    INTEGER NOT NULL REFERENCES dataset_version(id),
    seeds_run_id        INTEGER NOT NULL REFERENCES run(id) ON DELETE CASCADE,
    augmented_run_id    INTEGER NOT NULL REFERENCES run(id) ON DELETE CASCADE,
    config              TEXT NOT NULL DEFAULT '{}',
    created_at          TEXT NOT NULL
);
CREATE INDEX ablation_project ON ablation(project_id);
