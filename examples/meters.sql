-- The meters of examples/meter-load.yaml (m-000001 ... m-001000) with the metadata that
-- examples/meter-streams.yaml's `lookup` adds to every reading: region, tariff, capacity.
--   psql -f examples/meters.sql
-- m-001000 is left out on purpose: its readings go through with null metadata (on_miss: null).
CREATE TABLE IF NOT EXISTS meters (
  id          text PRIMARY KEY,
  region      text NOT NULL,
  tariff      text,
  capacity_kw float8 NOT NULL
);
INSERT INTO meters
SELECT format('m-%s', lpad(g::text, 6, '0')),
       (ARRAY['north', 'south', 'east', 'west', 'centre'])[1 + g % 5],
       CASE WHEN g % 10 = 0 THEN NULL ELSE (ARRAY['flat', 'peak', 'night'])[1 + g % 3] END,
       3.0 + (g % 8) * 1.5
  FROM generate_series(1, 999) g
ON CONFLICT (id) DO NOTHING;
