-- tumorlab schema 2: login throttling (failed attempts per username and per client address,
-- with exponential backoff) and indexes for the case list filters.

CREATE TABLE login_failures (
  key TEXT PRIMARY KEY,          -- 'user:<username>' or 'ip:<address>'
  failures INTEGER NOT NULL,
  last_failure_ms INTEGER NOT NULL
);

CREATE INDEX cases_status ON cases(status, id);
CREATE INDEX cases_assignee ON cases(assignee_user_id, status);
