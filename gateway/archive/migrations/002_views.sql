-- Views for people (docs/fleet.md#queries).

-- How many cycles each device ran per day (UTC) and how they were judged.
CREATE VIEW cycles_by_device_day_verdict AS
SELECT site, device, (started_at AT TIME ZONE 'UTC')::date AS day,
       coalesce(verdict, 'none') AS verdict, count(*) AS cycles,
       count(*) FILTER (WHERE NOT complete) AS incomplete
FROM cycle_records
GROUP BY site, device, day, coalesce(verdict, 'none');

-- Cycles whose device result and sterigate's own verdict disagree.
CREATE VIEW disagreements AS
SELECT id, site, device, cycle, program, started_at, ended_at, device_result, verdict
FROM cycle_records
WHERE agrees = false;

-- Holes in the devices' sequences: explained ones, late ones and open
-- (unexplained) ones.
CREATE VIEW gaps AS
SELECT site, device, gateway, from_seq, to_seq, state, explained_by, detail, detected_at, closed_at
FROM chain_problems
WHERE code = 'missing';
