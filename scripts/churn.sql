-- The churn model of issue 12: what changes in `ofertas` between two refreshes half a day
-- apart. Of the offers live at :at,
--   :price_pct % (default 5) change price (a new price, the same original price),
--   :end_pct   % (default 3) end at :at,
-- and :new_pct % as many new offers (default 3) start at :at.
--
-- Deterministic: which offers change, and how, derives only from their ids and :round
-- (no random()), so the same database state and parameters always give the same rows.
-- Use a new :round for each period (1, 2, 3, …) so each picks other offers. Every changed
-- or new row gets updated_at = :at. Counts are rounded to whole offers and printed.
--
-- Run after scripts/seed.sql (bench/delta.sh does, between refreshes under a fake clock):
--   psql -v ON_ERROR_STOP=1 -v at='2026-11-30 12:30:00-05' -v round=1 -f scripts/churn.sql
-- :at defaults to now(); give it explicitly when the refreshes run under a fake clock.

\set ON_ERROR_STOP on
\if :{?at}
\else
select now()::text as at \gset
\endif
\if :{?round}
\else
\set round 1
\endif
\if :{?price_pct}
\else
\set price_pct 5
\endif
\if :{?end_pct}
\else
\set end_pct 3
\endif
\if :{?new_pct}
\else
\set new_pct 3
\endif

begin;

-- The live offers at :at in a deterministic pseudo-random order for this round: the first
-- end_pct % end, the next price_pct % change price, and new offers copy the next new_pct %.
create temporary table churn_pick on commit drop as
select id,
       row_number() over (order by md5(id::text || '/' || :'round'), id) as pos,
       (id * 7 + :round * 13) % 25 as k,
       count(*) over () as live
  from ofertas
 where active and starts_at <= :'at'::timestamptz
   and (ends_at is null or ends_at > :'at'::timestamptz);

select live,
       round(live * :end_pct / 100.0)::int as ending,
       round(live * :price_pct / 100.0)::int as repriced,
       round(live * :new_pct / 100.0)::int as starting
  from churn_pick limit 1 \gset churn_

update ofertas o
   set ends_at = :'at'::timestamptz, updated_at = :'at'::timestamptz
  from churn_pick p
 where p.id = o.id and p.pos <= :churn_ending;

-- A new price between 85 % and 110 % of the old one, never 100 %; original prices stay.
update ofertas o
   set price = greatest(round(o.price * (0.85 + (p.k + (p.k >= 15)::int) / 100.0), 2), 0.01),
       updated_at = :'at'::timestamptz
  from churn_pick p
 where p.id = o.id
   and p.pos > :churn_ending and p.pos <= :churn_ending + :churn_repriced;

-- New offers: another branch of the same merchant runs a copy of a live offer with its own
-- id, price, image and dates, from :at for 3 to 42 days (a quarter open-ended).
insert into ofertas (id, merchant_id, merchant_name, title, description, category, price,
                     original_price, currency, image_url, starts_at, ends_at, active, updated_at)
select m.max_id + p.pos - :churn_ending - :churn_repriced as id,
       o.merchant_id, o.merchant_name, o.title, o.description, o.category,
       greatest(round(o.price * (0.80 + ((o.id * 11 + :round * 17) % 31) / 100.0), 2), 0.01),
       o.original_price, o.currency,
       case when o.image_url is null then null
            else 'https://img.ofertasws.pa/o/' || (m.max_id + p.pos - :churn_ending - :churn_repriced) || '.jpg'
       end,
       :'at'::timestamptz,
       case when o.id % 4 = 1 then null
            else :'at'::timestamptz + make_interval(days => 3 + (o.id % 40)::int) end,
       true,
       :'at'::timestamptz
  from churn_pick p
  join ofertas o on o.id = p.id
 cross join (select max(id) as max_id from ofertas) m
 where p.pos > :churn_ending + :churn_repriced
   and p.pos <= :churn_ending + :churn_repriced + :churn_starting;

commit;

\echo churn round :round at :at: :churn_live live, :churn_ending ended, :churn_repriced repriced, :churn_starting started
