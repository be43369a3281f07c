-- One row per refresh attempt, including failed and skipped ones.
create table if not exists ofertasws_cache_refresh_log (
    id                bigint generated always as identity primary key,
    executed_at       timestamptz not null default now(),
    trigger           text        not null,
    status            text        not null check (status in ('success', 'unchanged', 'skipped', 'failed')),
    records_count     integer,
    execution_time_ms integer,
    request_size_kb   integer,
    json_bytes        bigint,
    gzip_bytes        bigint,
    zstd_bytes        bigint,
    etag              text,
    request_id        text,
    instance          text,
    error             text
);

-- Serves the catch-up rule (last success) and operators reading recent history.
create index if not exists ofertasws_cache_refresh_log_executed_at_idx
    on ofertasws_cache_refresh_log (executed_at desc);
