//! The deployment's PostgreSQL side: the seed, changes a scenario makes to the offers,
//! and the refresh log it reads back.

use chrono::{DateTime, Utc};
use sqlx::{Connection, Executor, PgConnection, PgPool};

use super::Stack;

/// A row of `ofertasws_cache_refresh_log`.
#[derive(Clone, Debug)]
pub struct LogRow {
    /// When the attempt started.
    pub executed_at: DateTime<Utc>,
    /// What asked for it.
    pub trigger: String,
    /// `success`, `unchanged`, `skipped` or `failed`.
    pub status: String,
    /// How long the attempt took.
    pub execution_time_ms: i32,
    /// The request it answered, if any.
    pub request_id: Option<String>,
    /// Why it failed or was skipped.
    pub error: Option<String>,
}

impl Stack {
    /// Touches offer `id` so the next refresh sees changed content.
    pub async fn change_offer(&self, id: i64) {
        sqlx::query("update ofertas set title = title || '!', updated_at = now() where id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .expect("offer updated");
    }

    /// Holds an exclusive lock on `ofertas` until the connection is dropped, so a
    /// refresh blocks inside its query for as long as the scenario needs.
    pub async fn block_offers_table(&self) -> PgConnection {
        let mut conn = PgConnection::connect(&self.db_url)
            .await
            .expect("blocker connects");
        conn.execute("begin; lock table ofertas in access exclusive mode")
            .await
            .expect("table locked");
        conn
    }

    /// Every refresh log row, oldest first.
    pub async fn log_rows(&self) -> Vec<LogRow> {
        type Row = (
            DateTime<Utc>,
            String,
            String,
            Option<i32>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "select executed_at, trigger, status, execution_time_ms, request_id, error
             from ofertasws_cache_refresh_log order by executed_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .expect("refresh log readable");
        rows.into_iter()
            .map(
                |(executed_at, trigger, status, ms, request_id, error)| LogRow {
                    executed_at,
                    trigger,
                    status,
                    execution_time_ms: ms.unwrap_or_default(),
                    request_id,
                    error,
                },
            )
            .collect()
    }
}

/// Inserts `count` live offers (ids 1..=count) in four categories.
pub async fn seed(pool: &PgPool, count: i64) {
    sqlx::query(
        "insert into ofertas (id, merchant_id, merchant_name, title, description, category, price,
           original_price, currency, image_url, starts_at, ends_at, active, updated_at)
         select g, 100 + g % 7, 'Comercio ' || (g % 7), 'Oferta ' || g,
                case when g % 2 = 0 then 'Descripción de la oferta ' || g end,
                (array['Restaurantes', 'Moda', 'Tecnología', 'Hogar'])[1 + g % 4],
                (1 + g % 90) + 0.99, case when g % 3 = 0 then 120.00 end, 'USD',
                case when g % 3 <> 0 then 'https://img.example.pa/' || g || '.jpg' end,
                now() - interval '1 day',
                case when g % 2 = 0 then now() + (1 + g % 30) * interval '1 day' end,
                true, now() - (g % 48) * interval '1 hour'
         from generate_series(1, $1) g",
    )
    .bind(count)
    .execute(pool)
    .await
    .expect("offers seeded");
}
