-- Offers: the source of truth, written by other systems.
create table if not exists ofertas (
    id             bigint primary key,
    merchant_id    bigint        not null,
    merchant_name  text          not null,
    title          text          not null,
    description    text,
    category       text          not null,
    price          numeric(12,2) not null,
    original_price numeric(12,2),
    currency       char(3)       not null default 'USD',
    image_url      text,
    starts_at      timestamptz   not null,
    ends_at        timestamptz,
    active         boolean       not null default true,
    updated_at     timestamptz   not null default now()
);

-- Serves the snapshot query: active offers whose window contains now(), read in id order.
create index if not exists ofertas_live_idx on ofertas (id) include (starts_at, ends_at) where active;
