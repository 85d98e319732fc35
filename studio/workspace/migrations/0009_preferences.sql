-- Seed Studio workspace, schema version 9: preference pairs frozen with a dataset version.
--
-- preference_pair: one prompt / chosen / rejected pair of a version (studio.data.preferences builds them from
-- reviews, reviewer edits, blind A/B votes and, when allowed, judge scores). split is 'train' or 'validation'
-- (held-out pairs, for the reward accuracy a preference run reports). prompt is a JSON list of chat messages
-- ending with the user's turn; chosen and rejected are the assistant's answers as text. source: review | edit |
-- vote | judge (judge = a machine pair); provenance (JSON) names the candidates, votes, reviewers and scores.
-- Like dataset_row, a pair is a copy and cannot be updated.

CREATE TABLE preference_pair (
    id          INTEGER PRIMARY KEY,
    version_id  INTEGER NOT NULL REFERENCES dataset_version(id) ON DELETE CASCADE,
    split       TEXT NOT NULL,
    position    INTEGER NOT NULL,
    source      TEXT NOT NULL,
    prompt      TEXT NOT NULL,
    chosen      TEXT NOT NULL,
    rejected    TEXT NOT NULL,
    provenance  TEXT NOT NULL DEFAULT '{}',
    UNIQUE (version_id, split, position)
);
CREATE INDEX preference_pair_version ON preference_pair(version_id, split, position);

CREATE TRIGGER preference_pair_frozen BEFORE UPDATE ON preference_pair
BEGIN
    SELECT RAISE(ABORT, 'dataset versions are frozen: freeze a new version instead');
END;
