//! Prints every named SQL statement of the code as PostgreSQL runs it, one per line:
//! `name<TAB>text` with whitespace collapsed. `scripts/explain-queries` reads this instead of
//! retyping the statements, so the documented plans are the plans of the code's own SQL.
//!
//! Build it with `cargo build --example statements`; run it with no arguments.

use outgrow::{
    db::{accounts, media, sessions, shards},
    store::{
        analytics,
        catalog::{self, ProductQuery},
        events, orders, rebalance, seed, views,
    },
};
use outgrow_platform::{jobs, sql::Sql};
use uuid::Uuid;

/// A catalog page asks for its size plus one, to know whether there is more.
const PAGE: u32 = 21;

fn main() {
    let mut lines: Vec<(String, String)> = Vec::new();
    let named = accounts::STATEMENTS
        .iter()
        .chain(sessions::STATEMENTS)
        .chain(jobs::STATEMENTS)
        .chain(media::STATEMENTS)
        .chain(shards::STATEMENTS)
        .chain(catalog::STATEMENTS)
        .chain(orders::STATEMENTS.iter().flat_map(|module| module.iter()))
        .chain(events::STATEMENTS)
        .chain(analytics::STATEMENTS)
        .chain(views::STATEMENTS)
        .chain(rebalance::STATEMENTS)
        .chain(seed::STATEMENTS);
    for statement in named {
        lines.push(line(statement));
    }
    // Catalog pages, assembled from optional filters: one statement per combination the
    // documentation explains.
    let page = ProductQuery {
        limit: PAGE,
        ..ProductQuery::default()
    };
    let listings = [
        ("products.list", page.clone()),
        (
            "products.list_after",
            ProductQuery {
                after: Some(Uuid::nil()),
                ..page.clone()
            },
        ),
        (
            "products.list_price",
            ProductQuery {
                min_price: Some(0),
                max_price: Some(0),
                ..page.clone()
            },
        ),
        (
            "products.list_text",
            ProductQuery {
                text: Some(String::new()),
                ..page.clone()
            },
        ),
        (
            "products.list_text_price",
            ProductQuery {
                min_price: Some(0),
                max_price: Some(0),
                text: Some(String::new()),
                ..page.clone()
            },
        ),
    ];
    for (name, query) in listings {
        lines.push((
            name.to_owned(),
            collapse(&catalog::list_statement_postgres(&query)),
        ));
    }
    // The lines of 1 to a page of orders: one placeholder per order.
    for count in 1..=PAGE as usize {
        lines.push((
            format!("orders.items.{count}"),
            collapse(&orders::items_statement(count)),
        ));
    }
    // A batch of seeded orders: one tuple of placeholders per row (two stand for any batch).
    lines.push(("seed.orders.2".to_owned(), collapse(&seed::orders_statement(2))));
    for (name, text) in lines {
        println!("{name}\t{text}");
    }
}

fn line(statement: &Sql) -> (String, String) {
    (statement.name.to_owned(), collapse(statement.postgres()))
}

/// The statement on one line, as the documentation shows it.
fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
