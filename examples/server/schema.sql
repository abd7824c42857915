-- schema.sql - the opecom-server database (SQLite, WAL). db.c embeds the
-- same text (tests/test_server_track.c checks that the two agree) and
-- stores its version in PRAGMA user_version (1).
--
-- sessions          one row per (visitor, session id), updated by every event
-- page_views        one row per page view, in arrival order (id)
-- purchases         one row per purchase event
-- session_features  the UCI features of each closed session part, as the
--                   sessionizer computed them when it closed
-- sessions_export   the UCI CSV columns, in order, by closing time:
--                   sqlite3 -header -csv DB 'SELECT * FROM sessions_export'

CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    visitor_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    variant TEXT NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    os TEXT,
    browser TEXT,
    region TEXT,
    traffic_type TEXT,
    page_views INTEGER NOT NULL DEFAULT 0,
    purchases INTEGER NOT NULL DEFAULT 0,
    revenue REAL NOT NULL DEFAULT 0,
    UNIQUE (visitor_id, session_id)
);
CREATE INDEX IF NOT EXISTS sessions_variant ON sessions (variant, purchases);

CREATE TABLE IF NOT EXISTS page_views (
    id INTEGER PRIMARY KEY,
    session INTEGER NOT NULL REFERENCES sessions (id),
    ts INTEGER NOT NULL,
    page_type TEXT NOT NULL
        CHECK (page_type IN ('administrative', 'informational', 'product_related')),
    page_id TEXT NOT NULL,
    duration REAL NOT NULL CHECK (duration >= 0)
);
CREATE INDEX IF NOT EXISTS page_views_ts ON page_views (ts, id);
CREATE INDEX IF NOT EXISTS page_views_session ON page_views (session);

CREATE TABLE IF NOT EXISTS purchases (
    id INTEGER PRIMARY KEY,
    session INTEGER NOT NULL REFERENCES sessions (id),
    ts INTEGER NOT NULL,
    revenue REAL NOT NULL CHECK (revenue >= 0)
);
CREATE INDEX IF NOT EXISTS purchases_ts ON purchases (ts, id);
CREATE INDEX IF NOT EXISTS purchases_session ON purchases (session);

CREATE TABLE IF NOT EXISTS session_features (
    session INTEGER NOT NULL REFERENCES sessions (id),
    part INTEGER NOT NULL,
    closed_ms INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    n_events INTEGER NOT NULL,
    revenue_total REAL NOT NULL,
    administrative INTEGER NOT NULL,
    administrative_duration REAL NOT NULL,
    informational INTEGER NOT NULL,
    informational_duration REAL NOT NULL,
    product_related INTEGER NOT NULL,
    product_related_duration REAL NOT NULL,
    bounce_rates REAL NOT NULL,
    exit_rates REAL NOT NULL,
    page_values REAL NOT NULL,
    special_day REAL NOT NULL,
    month TEXT NOT NULL,
    operating_systems INTEGER NOT NULL,
    browser INTEGER NOT NULL,
    region INTEGER NOT NULL,
    traffic_type INTEGER NOT NULL,
    visitor_type TEXT NOT NULL,
    weekend INTEGER NOT NULL,
    revenue INTEGER NOT NULL,
    PRIMARY KEY (session, part)
);
CREATE INDEX IF NOT EXISTS session_features_closed ON session_features (closed_ms, start_ms);

CREATE VIEW IF NOT EXISTS sessions_export AS
SELECT administrative AS Administrative,
       administrative_duration AS Administrative_Duration,
       informational AS Informational,
       informational_duration AS Informational_Duration,
       product_related AS ProductRelated,
       product_related_duration AS ProductRelated_Duration,
       bounce_rates AS BounceRates,
       exit_rates AS ExitRates,
       page_values AS PageValues,
       special_day AS SpecialDay,
       month AS Month,
       operating_systems AS OperatingSystems,
       browser AS Browser,
       region AS Region,
       traffic_type AS TrafficType,
       visitor_type AS VisitorType,
       CASE WHEN weekend THEN 'TRUE' ELSE 'FALSE' END AS Weekend,
       CASE WHEN revenue THEN 'TRUE' ELSE 'FALSE' END AS Revenue
FROM session_features
ORDER BY closed_ms, start_ms, session, part;
