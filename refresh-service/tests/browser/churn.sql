-- The churn model of issue 12, for the browser test: what changes in `ofertas` between
-- two refreshes half a day apart. Of the offers live now, 3 % end now, the next 5 % change
-- price, and as many new offers as 3 % of them start now (copies of the next 3 % under
-- new ids). Which offers, derives only from their ids (no random()).
--   psql -v ON_ERROR_STOP=1 -d URL -f refresh-service/tests/browser/churn.sql
-- (The browser test's own copy of the model; use the shared script instead once the
-- benchmark's scripts/churn.sql is in the tree.)

\set ON_ERROR_STOP on

begin;

create temporary table churn_pick on commit drop as
select id,
       row_number() over (order by md5(id::text), id) as pos,
       count(*) over () as live
  from ofertas
 where active and starts_at <= now() and (ends_at is null or ends_at > now());

select live,
       round(live * 0.03)::int as ending,
       round(live * 0.05)::int as repriced,
       round(live * 0.03)::int as starting
  from churn_pick limit 1 \gset churn_

update ofertas o
   set ends_at = now(), updated_at = now()
  from churn_pick p
 where p.id = o.id and p.pos <= :churn_ending;

-- 85 % to 96 % of the old price (never the same), original prices kept.
update ofertas o
   set price = greatest(round(o.price * (0.85 + (o.id % 12) / 100.0), 2), 0.01),
       updated_at = now()
  from churn_pick p
 where p.id = o.id
   and p.pos > :churn_ending and p.pos <= :churn_ending + :churn_repriced;

insert into ofertas (id, merchant_id, merchant_name, title, description, category, price,
                     original_price, currency, image_url, starts_at, ends_at, active, updated_at)
select m.max_id + p.pos, o.merchant_id, o.merchant_name, o.title || ' (nueva sucursal)',
       o.description, o.category, o.price, o.original_price, o.currency, o.image_url,
       now(), now() + interval '7 days', true, now()
  from churn_pick p
  join ofertas o on o.id = p.id
 cross join (select max(id) as max_id from ofertas) m
 where p.pos > :churn_ending + :churn_repriced
   and p.pos <= :churn_ending + :churn_repriced + :churn_starting;

commit;

\echo churn: :churn_live live, :churn_ending ended, :churn_repriced repriced, :churn_starting started
