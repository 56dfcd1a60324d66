-- tumorlab schema 1: users, sessions, patients, studies, images, cases, immutable label
-- revisions, jobs, models and the hash-chained audit trail. Times are Unix epoch milliseconds.

CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  username TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL CHECK (role IN ('admin', 'reviewer', 'annotator')),
  password_hash TEXT NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
  created_ms INTEGER NOT NULL,
  password_changed_ms INTEGER NOT NULL
);

-- Only the SHA-256 of a session token is stored.
CREATE TABLE sessions (
  id INTEGER PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  user_id INTEGER NOT NULL REFERENCES users(id),
  created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  csrf_token TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE patients (
  id INTEGER PRIMARY KEY,
  pseudonym TEXT NOT NULL UNIQUE,
  created_ms INTEGER NOT NULL
);

CREATE TABLE studies (
  id INTEGER PRIMARY KEY,
  patient_id INTEGER NOT NULL REFERENCES patients(id),
  study_key TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL,
  UNIQUE (patient_id, study_key)
);

-- Each image is stored once, as DIR/images/<sha256>.nii.gz.
CREATE TABLE images (
  id INTEGER PRIMARY KEY,
  study_id INTEGER REFERENCES studies(id),
  sha256 TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64),
  file_bytes INTEGER NOT NULL,
  modality TEXT NOT NULL DEFAULT '',
  channel_names TEXT NOT NULL DEFAULT '[]',
  size_x INTEGER NOT NULL,
  size_y INTEGER NOT NULL,
  size_z INTEGER NOT NULL,
  spacing_x REAL NOT NULL,
  spacing_y REAL NOT NULL,
  spacing_z REAL NOT NULL,
  demo INTEGER NOT NULL DEFAULT 0 CHECK (demo IN (0, 1)),
  created_ms INTEGER NOT NULL
);

CREATE TABLE cases (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  image_id INTEGER NOT NULL REFERENCES images(id),
  status TEXT NOT NULL DEFAULT 'new'
    CHECK (status IN ('new', 'presegmented', 'in_progress', 'submitted', 'validated', 'rejected')),
  assignee_user_id INTEGER REFERENCES users(id),
  editing_seconds REAL NOT NULL DEFAULT 0,
  uncertainty REAL,
  al_rank REAL,
  current_revision_id INTEGER REFERENCES label_revisions(id),
  status_comment TEXT NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL
);

-- Every status or assignment change of a case.
CREATE TABLE case_events (
  id INTEGER PRIMARY KEY,
  case_id INTEGER NOT NULL REFERENCES cases(id),
  event TEXT NOT NULL CHECK (event IN ('status', 'assign')),
  from_status TEXT,
  to_status TEXT,
  assignee_user_id INTEGER REFERENCES users(id),
  user_id INTEGER REFERENCES users(id),
  comment TEXT NOT NULL DEFAULT '',
  time_ms INTEGER NOT NULL
);
CREATE INDEX case_events_case ON case_events(case_id, id);

-- Immutable: the triggers below refuse UPDATE and DELETE. Bytes in DIR/labels/<sha256>.nii.gz.
CREATE TABLE label_revisions (
  id INTEGER PRIMARY KEY,
  case_id INTEGER NOT NULL REFERENCES cases(id),
  image_id INTEGER NOT NULL REFERENCES images(id),
  parent_id INTEGER REFERENCES label_revisions(id),
  author_user_id INTEGER REFERENCES users(id),
  model_name TEXT NOT NULL DEFAULT '',
  model_version TEXT NOT NULL DEFAULT '',
  kind TEXT NOT NULL CHECK (kind IN ('ai', 'manual', 'refined', 'imported')),
  created_ms INTEGER NOT NULL,
  voxel_count INTEGER NOT NULL CHECK (voxel_count >= 0),
  volume_ml REAL NOT NULL CHECK (volume_ml >= 0),
  sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
  file_bytes INTEGER NOT NULL,
  note TEXT NOT NULL DEFAULT '',
  CHECK (author_user_id IS NOT NULL OR model_name <> '')
);
CREATE INDEX label_revisions_case ON label_revisions(case_id, id);
CREATE TRIGGER label_revisions_immutable_update BEFORE UPDATE ON label_revisions
BEGIN SELECT RAISE(ABORT, 'label revisions are immutable'); END;
CREATE TRIGGER label_revisions_immutable_delete BEFORE DELETE ON label_revisions
BEGIN SELECT RAISE(ABORT, 'label revisions are immutable'); END;

CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  type TEXT NOT NULL CHECK (type IN ('presegment', 'predict_batch', 'train', 'import', 'export')),
  state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  priority INTEGER NOT NULL,
  progress REAL NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  owner_user_id INTEGER REFERENCES users(id),
  case_id INTEGER REFERENCES cases(id),
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  restartable INTEGER NOT NULL DEFAULT 1,
  attempts INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL,
  started_ms INTEGER,
  finished_ms INTEGER,
  params_json TEXT NOT NULL DEFAULT '{}',
  result_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX jobs_queue ON jobs(state, priority, id);

CREATE TABLE models (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  version TEXT NOT NULL,
  path TEXT NOT NULL,
  metadata_json TEXT NOT NULL DEFAULT '{}',
  active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
  created_ms INTEGER NOT NULL,
  UNIQUE (name, version)
);
CREATE UNIQUE INDEX models_one_active ON models(name) WHERE active = 1;

-- Append-only, hash-chained: hash = SHA-256(prev_hash || canonical row). No foreign keys, so
-- nothing else can ever block or cascade into it; the triggers refuse UPDATE and DELETE.
CREATE TABLE audit (
  seq INTEGER PRIMARY KEY,
  time_ms INTEGER NOT NULL,
  user_id INTEGER,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  case_id INTEGER,
  outcome TEXT NOT NULL,
  detail_json TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX audit_case ON audit(case_id, seq);
CREATE INDEX audit_user ON audit(user_id, seq);
CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
