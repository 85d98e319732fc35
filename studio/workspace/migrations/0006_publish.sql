-- Seed Studio workspace, schema version 6: Publish (adapters, merged models and dataset versions on the Hub).
--
-- publication (schema 1) gets one row per successful push, written only after the Hub accepted the commit:
-- kind 'adapter' | 'model' (a full fine-tune) | 'merged' | 'dataset'; subject_id the run or dataset version;
-- revision the commit sha the push made; url the repo page (never a credential). The token is never stored.

ALTER TABLE publication ADD COLUMN private INTEGER NOT NULL DEFAULT 1;
ALTER TABLE publication ADD COLUMN files TEXT NOT NULL DEFAULT '[]';
ALTER TABLE publication ADD COLUMN message TEXT NOT NULL DEFAULT '';
ALTER TABLE publication ADD COLUMN account TEXT NOT NULL DEFAULT '';
CREATE INDEX publication_project ON publication(project_id, created_at);
