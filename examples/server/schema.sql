-- schema.sql - the opecom-server database, the one definition both
-- backends create (SQLite and MariaDB; the Makefile embeds it as
-- srv_schema_sql). Written in the SQL the two share; the one dialect word
-- is @ID@, an auto-numbered 64-bit primary key:
--   SQLite   INTEGER PRIMARY KEY
--   MariaDB  BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY
-- Schema version 2 (SQLite: PRAGMA user_version; MariaDB: schema_version).
--
-- log_head          one row: the last commit's log number (see store.h)
-- sessions          one row per (visitor, session id), updated by every event
-- page_views        one row per page view, with its commit's log number
-- purchases         one row per purchase event, likewise
-- session_features  the UCI features of each closed session part, as the
--                   sessionizer computed them when it closed
-- sessions_export   the UCI CSV columns, in order, by closing time:
--                   sqlite3 -header -csv DB 'SELECT * FROM sessions_export'

CREATE TABLE IF NOT EXISTS log_head (
    one INTEGER NOT NULL PRIMARY KEY CHECK (one = 1),
    seq BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS sessions (
    id @ID@,
    visitor_id VARCHAR(127) NOT NULL,
    session_id VARCHAR(127) NOT NULL,
    variant VARCHAR(63) NOT NULL,
    first_ms BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    os VARCHAR(63),
    browser VARCHAR(63),
    region VARCHAR(63),
    traffic_type VARCHAR(63),
    page_views INTEGER NOT NULL DEFAULT 0,
    purchases INTEGER NOT NULL DEFAULT 0,
    revenue DOUBLE NOT NULL DEFAULT 0,
    UNIQUE (visitor_id, session_id)
);
CREATE INDEX IF NOT EXISTS sessions_variant ON sessions (variant, purchases);
CREATE INDEX IF NOT EXISTS sessions_session_id ON sessions (session_id);

CREATE TABLE IF NOT EXISTS page_views (
    id @ID@,
    session BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    page_type VARCHAR(15) NOT NULL
        CHECK (page_type IN ('administrative', 'informational', 'product_related')),
    page_id VARCHAR(255) NOT NULL,
    duration DOUBLE NOT NULL CHECK (duration >= 0),
    seq BIGINT NOT NULL DEFAULT 0,
    FOREIGN KEY (session) REFERENCES sessions (id)
);
CREATE INDEX IF NOT EXISTS page_views_log ON page_views (seq, ts, id);
CREATE INDEX IF NOT EXISTS page_views_session ON page_views (session);

CREATE TABLE IF NOT EXISTS purchases (
    id @ID@,
    session BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    revenue DOUBLE NOT NULL CHECK (revenue >= 0),
    seq BIGINT NOT NULL DEFAULT 0,
    FOREIGN KEY (session) REFERENCES sessions (id)
);
CREATE INDEX IF NOT EXISTS purchases_log ON purchases (seq, ts, id);
CREATE INDEX IF NOT EXISTS purchases_session ON purchases (session);

CREATE TABLE IF NOT EXISTS session_features (
    session BIGINT NOT NULL,
    part INTEGER NOT NULL,
    closed_ms BIGINT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    n_events INTEGER NOT NULL,
    revenue_total DOUBLE NOT NULL,
    administrative INTEGER NOT NULL,
    administrative_duration DOUBLE NOT NULL,
    informational INTEGER NOT NULL,
    informational_duration DOUBLE NOT NULL,
    product_related INTEGER NOT NULL,
    product_related_duration DOUBLE NOT NULL,
    bounce_rates DOUBLE NOT NULL,
    exit_rates DOUBLE NOT NULL,
    page_values DOUBLE NOT NULL,
    special_day DOUBLE NOT NULL,
    month VARCHAR(4) NOT NULL,
    operating_systems INTEGER NOT NULL,
    browser INTEGER NOT NULL,
    region INTEGER NOT NULL,
    traffic_type INTEGER NOT NULL,
    visitor_type VARCHAR(17) NOT NULL,
    weekend INTEGER NOT NULL,
    revenue INTEGER NOT NULL,
    PRIMARY KEY (session, part),
    FOREIGN KEY (session) REFERENCES sessions (id)
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
       CASE WHEN weekend <> 0 THEN 'TRUE' ELSE 'FALSE' END AS Weekend,
       CASE WHEN revenue <> 0 THEN 'TRUE' ELSE 'FALSE' END AS Revenue
FROM session_features
ORDER BY closed_ms, start_ms, session, part;
