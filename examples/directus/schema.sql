-- The Directus example: contacts kept in PostgreSQL and in a Directus 12.4.0 collection
-- (npm; Directus runs on its own database of the same PostgreSQL server), synced both
-- ways. Applied before the connector is registered (publication.autocreate.mode=filtered
-- needs the table to exist).

CREATE TABLE IF NOT EXISTS public.dx_contact (
    id          bigserial PRIMARY KEY,
    first_name  text,
    last_name   text,
    email       text NOT NULL UNIQUE,
    phone       text,
    notes       text,                   -- internal: not mapped, a change costs no API call
    updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.dx_contact REPLICA IDENTITY FULL;
