-- Where a static token came from, as Tinybird shows it: C (custom), DS (a data source's
-- TOKEN line), P (a pipe's TOKEN line), and the resource it came from.
ALTER TABLE tokens ADD COLUMN origin TEXT NOT NULL DEFAULT 'C';
ALTER TABLE tokens ADD COLUMN origin_resource TEXT NOT NULL DEFAULT '';
