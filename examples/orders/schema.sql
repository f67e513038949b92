-- The orders example: an order and its positions (tickets), in the shape of pretix's
-- Order and OrderPosition. Applied by `python -m cdcsync.examples.orders` before its
-- connector is registered (publication.autocreate.mode=filtered needs the tables).

CREATE TABLE IF NOT EXISTS public.shop_order (
    id          bigserial PRIMARY KEY,
    code        text NOT NULL UNIQUE,      -- the order code a customer quotes
    email       text NOT NULL,
    status      text NOT NULL DEFAULT 'pending',
    total       numeric(10, 2) NOT NULL DEFAULT 0
);
ALTER TABLE public.shop_order REPLICA IDENTITY FULL;

CREATE TABLE IF NOT EXISTS public.order_position (
    id             bigserial PRIMARY KEY,
    order_id       bigint NOT NULL REFERENCES public.shop_order (id) ON DELETE CASCADE,
    position_code  text NOT NULL UNIQUE,   -- e.g. ABC12-1: found again after a crash
    item           text NOT NULL,
    price          numeric(10, 2) NOT NULL,
    attendee_name  text
);
-- A deleted position's event must still say which order it belonged to.
ALTER TABLE public.order_position REPLICA IDENTITY FULL;
CREATE INDEX IF NOT EXISTS order_position_order_id ON public.order_position (order_id);
