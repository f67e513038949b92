-- The contacts example: persons and companies in one table, as a case-management
-- system keeps its parties, synced both ways with a CRM that knows "contacts".
-- Applied by `python -m cdcsync.examples.contacts` before its connector is registered
-- (publication.autocreate.mode=filtered needs the table to exist).

CREATE TABLE IF NOT EXISTS public.party (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'company')),
    first_name    text,              -- persons
    last_name     text,              -- persons
    company_name  text,              -- companies
    email         text NOT NULL UNIQUE,
    phone         text,
    notes         text,              -- internal: not mapped, a change costs no API call
    updated_at    timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.party REPLICA IDENTITY FULL;
