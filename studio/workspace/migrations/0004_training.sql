-- Seed Studio workspace, schema version 4: training runs as queued jobs in their own OS process.
--
-- run.status: queued -> running -> done | stopped (a checkpoint was saved on request) | failed |
-- interrupted (the process vanished: kill -9, crash, machine restart); stopping = stop requested.
-- stopped / interrupted / failed runs resume from their newest checkpoint.

ALTER TABLE run ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE run ADD COLUMN device TEXT NOT NULL DEFAULT '';
ALTER TABLE run ADD COLUMN message TEXT NOT NULL DEFAULT '';
ALTER TABLE run ADD COLUMN log_path TEXT NOT NULL DEFAULT '';
ALTER TABLE run ADD COLUMN step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE run ADD COLUMN max_steps INTEGER NOT NULL DEFAULT 0;
ALTER TABLE run ADD COLUMN best_checkpoint TEXT NOT NULL DEFAULT '';
ALTER TABLE run ADD COLUMN started_at TEXT NOT NULL DEFAULT '';
ALTER TABLE run ADD COLUMN heartbeat_at TEXT NOT NULL DEFAULT '';
ALTER TABLE run ADD COLUMN finished_at TEXT NOT NULL DEFAULT '';
-- Library versions, dataset version, base model ref, seeds: what a published adapter needs to say.
ALTER TABLE run ADD COLUMN provenance TEXT NOT NULL DEFAULT '{}';
CREATE INDEX run_status ON run(status);

-- A resumed run logs the steps after its checkpoint again: the newest value of a point wins.
CREATE UNIQUE INDEX run_metric_point ON run_metric(run_id, step, split, name);
