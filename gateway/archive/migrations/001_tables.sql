-- The archive's tables (docs/fleet.md#the-archives-tables). A device is
-- named by its site and id: device ids are unique within a site, because
-- they are one level of the site's MQTT topics.

CREATE TABLE gateways (
    site       text        NOT NULL,
    gateway    text        NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, gateway)
);

-- Every public key a gateway published on its retained key topic or named
-- in a key_rotation event signed by a key already known.
CREATE TABLE gateway_keys (
    site       text        NOT NULL,
    gateway    text        NOT NULL,
    key_id     text        NOT NULL,
    public_key bytea       NOT NULL,
    origin     text        NOT NULL,
    seen_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, gateway, key_id)
);

-- One row per device; the row is locked while a transaction stores the
-- device's messages, so instances sharing the load check its chain one at
-- a time. stored_through: every seq up to it is stored or explained by a
-- gap or journal_break event (what receipts report).
CREATE TABLE devices (
    site           text        NOT NULL,
    device         text        NOT NULL,
    gateway        text        NOT NULL,
    stored_through bigint      NOT NULL DEFAULT 0,
    first_seen     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, device)
);

-- The hash chain: one row per journal entry of every kind, telemetry
-- included even when its samples are not kept. link_to is the seq whose
-- hash prev_hash names: seq-1, or a journal_break's last_seq.
CREATE TABLE chain (
    site        text        NOT NULL,
    device      text        NOT NULL,
    seq         bigint      NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('cycle', 'event', 'telemetry')),
    id          text        NOT NULL,
    hash        text        NOT NULL,
    prev_hash   text        NOT NULL,
    link_to     bigint      NOT NULL,
    -- good, bad, unknown_key, none (telemetry is not signed one by one)
    signature   text        NOT NULL,
    key_id      text,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, device, seq)
);
-- Only the entries that chain to another than seq-1 (journal_break
-- events): a full index on link_to would cost every insert, and the
-- planner, whose statistics lag behind a fast-growing table, would pick
-- it over the primary key.
CREATE INDEX chain_breaks ON chain (site, device, link_to) WHERE link_to <> seq - 1;

CREATE TABLE cycle_records (
    id            text PRIMARY KEY,
    site          text        NOT NULL,
    gateway       text        NOT NULL,
    device        text        NOT NULL,
    seq           bigint      NOT NULL,
    cycle         bigint      NOT NULL,
    program       text        NOT NULL,
    started_at    timestamptz,
    ended_at      timestamptz,
    device_result text        NOT NULL,
    verdict       text,
    agrees        boolean,
    complete      boolean     NOT NULL,
    hash          text        NOT NULL,
    key_id        text,
    signature     bytea,
    -- The journaled payload byte for byte (its SHA-256 is hash, the
    -- signature covers it) and the same as jsonb for queries.
    payload       bytea       NOT NULL,
    record        jsonb       NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cycle_records_device_time ON cycle_records (site, device, started_at);
CREATE INDEX cycle_records_verdict ON cycle_records (verdict, started_at);

CREATE TABLE events (
    id          text PRIMARY KEY,
    site        text        NOT NULL,
    gateway     text        NOT NULL,
    device      text        NOT NULL,
    seq         bigint      NOT NULL,
    kind        text        NOT NULL,
    at          timestamptz,
    hash        text        NOT NULL,
    key_id      text,
    signature   bytea,
    payload     bytea       NOT NULL,
    event       jsonb       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_device_time ON events (site, device, at);
CREATE INDEX events_kind ON events (kind, at);

-- Telemetry batches, kept only with archive.telemetry: true. Partitioned
-- by the month they were received, so a month is dropped at once when its
-- retention ends; the archive creates each month's partition as needed.
CREATE TABLE telemetry (
    id          text        NOT NULL,
    site        text        NOT NULL,
    gateway     text        NOT NULL,
    device      text        NOT NULL,
    seq         bigint      NOT NULL,
    hash        text        NOT NULL,
    batch       jsonb       NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);

-- Ranges of seqs that gap events (thinned telemetry) or journal_break
-- events (entries lost with a damaged journal) say will never come.
CREATE TABLE explained_ranges (
    site     text   NOT NULL,
    device   text   NOT NULL,
    from_seq bigint NOT NULL,
    to_seq   bigint NOT NULL,
    kind     text   NOT NULL,
    by_id    text   NOT NULL,
    PRIMARY KEY (site, device, from_seq, to_seq)
);

-- Everything wrong with a chain. code is one of protocol/evidence's
-- problem codes (missing, altered, bad_signature, unknown_key, not_signed,
-- undecodable). state: open (unexplained, alarmed), explained (a gap or
-- journal_break event explains it), filled (the entries came late),
-- resolved (the key arrived after the entry).
CREATE TABLE chain_problems (
    problem      bigserial PRIMARY KEY,
    site         text        NOT NULL,
    device       text        NOT NULL,
    gateway      text        NOT NULL DEFAULT '',
    from_seq     bigint      NOT NULL DEFAULT 0,
    to_seq       bigint      NOT NULL DEFAULT 0,
    code         text        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('open', 'explained', 'filled', 'resolved')),
    explained_by text,
    detail       text        NOT NULL,
    detected_at  timestamptz NOT NULL DEFAULT now(),
    closed_at    timestamptz
);
CREATE UNIQUE INDEX chain_problems_once ON chain_problems (site, device, code, from_seq, to_seq);
CREATE INDEX chain_problems_open ON chain_problems (state) WHERE state = 'open';

-- A message whose id or (device, seq) is already stored with other
-- content: the first stays, this one is kept here and raised as an alarm.
CREATE TABLE conflicts (
    conflict    bigserial PRIMARY KEY,
    site        text        NOT NULL,
    device      text        NOT NULL,
    seq         bigint      NOT NULL,
    id          text        NOT NULL,
    topic       text        NOT NULL,
    stored_hash text        NOT NULL,
    hash        text        NOT NULL,
    message     bytea       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
