-- The json-server example: an address book kept in PostgreSQL and in json-server 0.17.4
-- (npm), synced both ways. Applied before the connector is registered
-- (publication.autocreate.mode=filtered needs the table to exist).

CREATE TABLE IF NOT EXISTS public.js_contact (
    id          bigserial PRIMARY KEY,
    first_name  text,
    last_name   text,
    email       text NOT NULL UNIQUE,   -- the natural key: looked up before creating
    phone       text,
    notes       text,                   -- internal: not mapped, a change costs no API call
    updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.js_contact REPLICA IDENTITY FULL;
