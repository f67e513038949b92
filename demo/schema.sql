-- Source tables of the demo sync, and Debezium's signal table.
-- Applied by `cdcsync local up` before the connector is registered
-- (publication.autocreate.mode=filtered needs the tables to exist).

CREATE TABLE IF NOT EXISTS public.contact (
    id          bigserial PRIMARY KEY,
    first_name  text,
    last_name   text,
    email       text NOT NULL UNIQUE,
    phone       text,
    notes       text,            -- not mapped: a change here costs no API call
    updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.contact REPLICA IDENTITY FULL;

CREATE TABLE IF NOT EXISTS public.debezium_signal (
    id    varchar(42) PRIMARY KEY,
    type  varchar(32) NOT NULL,
    data  varchar(2048)
);
