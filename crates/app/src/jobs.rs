//! The store's background jobs and the worker that runs them.
//!
//! Job kinds: `email.send` (queue `mail`), `uploads.variants` (WebP renditions of an upload),
//! `exports.build` (a user's data to a file, then the e-mail with its link),
//! `orders.confirmation_email`, `orders.reconcile` (settles a reservation whose request did not:
//! see [`crate::store::orders`]), `orders.finish_cancellation`, and the recurring
//! `sessions.cleanup` (hourly), `jobs.cleanup` (daily: finished jobs past `job_retention`),
//! `analytics.rollup` (every minute) and `store.maintenance` (hourly: event partitions,
//! expired idempotency keys). The
//! worker runs inside `outgrow serve` unless `--no-workers`, or alone as `outgrow worker`;
//! either way it stops claiming at SIGTERM and finishes or releases its jobs within
//! `shutdown_timeout`.

use chrono::Utc;
use outgrow_domain::{ExportId, ExportStatus, UploadId, UploadStatus};
use outgrow_platform::{
    jobs::{Job, JobContext, Recurring, Registry, Worker, WorkerOptions},
    shutdown::ShutdownSignal,
};
use serde::{Deserialize, Serialize};

use crate::{mail, state::AppState};

outgrow_platform::jobs! {
    /// Sends one e-mail. At least once: a worker that dies after the SMTP server accepted the
    /// message but before recording success sends it again (the `Message-ID` stays the same).
    SendEmail("email.send", queue = "mail", attempts = 8) {
        /// Recipient.
        to: String,
        /// Which e-mail, with what it needs.
        template: EmailTemplate,
    }
    /// Deletes sessions past their end (the SQL session store; Redis expires its own).
    CleanUpSessions("sessions.cleanup", attempts = 3) {}
    /// Deletes finished jobs older than `job_retention`, so the queue table does not grow forever.
    CleanUpJobs("jobs.cleanup", attempts = 3) {}
    /// Renders the WebP variants of an upload. Idempotent: variants are written under fixed keys
    /// and a finished upload is left alone.
    MakeImageVariants("uploads.variants", attempts = 5) {
        /// The upload.
        upload_id: UploadId,
    }
    /// Builds a user's data export, stores it, and queues the e-mail with its link in the same
    /// transaction that marks it ready (so a rerun after a crash neither loses nor repeats it).
    BuildExport("exports.build", attempts = 5) {
        /// The export.
        export_id: ExportId,
    }
    /// Recomputes the recent hours of the analytics roll-ups from every shard.
    RollUpAnalytics("analytics.rollup", attempts = 3) {}
    /// Store upkeep: event partitions for the coming days (PostgreSQL) and expired idempotency
    /// keys.
    MaintainStore("store.maintenance", attempts = 3) {}
}

/// The e-mails Outgrow sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EmailTemplate {
    /// After registration.
    Welcome {
        /// The new user's display name.
        name: String,
    },
    /// Someone tried to register an address that already has an account (registration answers
    /// the same either way; this tells the owner).
    RegistrationAttempt,
    /// A data export is ready.
    ExportReady {
        /// The signed download link.
        link: String,
        /// When the link stops working.
        expires_at: chrono::DateTime<Utc>,
    },
}

async fn send_email(job: SendEmail, context: JobContext<AppState>) -> anyhow::Result<()> {
    let email = match &job.template {
        EmailTemplate::Welcome { name } => mail::welcome(&job.to, name),
        EmailTemplate::RegistrationAttempt => mail::registration_attempt(&job.to),
        EmailTemplate::ExportReady { link, expires_at } => mail::export_ready(&job.to, link, *expires_at),
    };
    let state = &context.app;
    state
        .mailer
        .send(&state.settings.mail_from, &email, context.job_id)
        .await?;
    tracing::info!(to = job.to, subject = email.subject, "e-mail sent");
    Ok(())
}

async fn clean_up_sessions(_job: CleanUpSessions, context: JobContext<AppState>) -> anyhow::Result<()> {
    let deleted = context.app.sessions.delete_expired(Utc::now()).await?;
    tracing::info!(deleted, "expired sessions deleted");
    Ok(())
}

async fn clean_up_jobs(_job: CleanUpJobs, context: JobContext<AppState>) -> anyhow::Result<()> {
    let state = &context.app;
    let retention = chrono::Duration::from_std(state.settings.job_retention)?;
    let deleted = state.db.jobs().delete_finished(Utc::now() - retention).await?;
    tracing::info!(deleted, "finished jobs past their retention deleted");
    Ok(())
}

async fn make_image_variants(job: MakeImageVariants, context: JobContext<AppState>) -> anyhow::Result<()> {
    use futures::TryStreamExt;
    let state = &context.app;
    let Some(upload) = state.media.upload(job.upload_id).await? else {
        tracing::warn!(upload_id = %job.upload_id, "the upload is gone; nothing to do");
        return Ok(());
    };
    if upload.status != UploadStatus::Processing {
        return Ok(());
    }
    let key = crate::objects::original_key(upload.id);
    let object = state
        .storage
        .get(&key)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the original {key} is missing"))?;
    let chunks: Vec<bytes::Bytes> = object.into_stream().try_collect().await?;
    let original = chunks.concat();
    let max_pixels = state.settings.upload_max_pixels;
    // Decoding and resizing are CPU work: off the reactor.
    let rendered =
        tokio::task::spawn_blocking(move || crate::images::render_variants(&original, max_pixels)).await?;
    match rendered {
        Ok(variants) => {
            let mut made = Vec::with_capacity(variants.len());
            for (variant, bytes) in variants {
                let key = crate::objects::variant_key(upload.id, variant.width);
                state.storage.put(&key, bytes::Bytes::from(bytes)).await?;
                made.push(variant);
            }
            state
                .media
                .finish_upload(upload.id, &made, None, Utc::now())
                .await?;
            tracing::info!(upload_id = %upload.id, variants = made.len(), "image variants ready");
            // Products showing this image list its variants: their cached copies must go.
            let products = state.catalog.showing_image(upload.id.0).await?;
            crate::caches::forget_products(state, products).await;
        }
        Err(error) => {
            // A file that does not decode never will: record it instead of retrying.
            let message = format!("{error:#}");
            state
                .media
                .finish_upload(upload.id, &[], Some(&message), Utc::now())
                .await?;
            tracing::warn!(upload_id = %upload.id, error = message, "image could not be processed");
        }
    }
    Ok(())
}

async fn build_export(job: BuildExport, context: JobContext<AppState>) -> anyhow::Result<()> {
    let state = &context.app;
    let Some(export) = state.media.export(job.export_id).await? else {
        return Ok(());
    };
    if export.status != ExportStatus::Pending {
        return Ok(());
    }
    let user_id = export.user_id;
    let Some(user) = state.users.by_id(user_id).await? else {
        state
            .media
            .finish_export(export.id, Err("the account no longer exists"), &[], Utc::now())
            .await?;
        return Ok(());
    };
    let uploads = state.media.uploads_of(user_id).await?;
    let mut orders = Vec::new();
    let mut before = None;
    loop {
        let page = state.orders.list(user_id, before, 500).await?;
        let Some(last) = page.last() else { break };
        before = Some(last.order.id);
        orders.extend(page);
    }
    let file = crate::exports::render(&export.format, &user, &uploads, &orders)?;
    let size = file.len() as i64;
    // Same key on every attempt: a rerun overwrites, never duplicates.
    state
        .storage
        .put(&crate::objects::export_key(&export), bytes::Bytes::from(file))
        .await?;
    let (link, expires_at) = crate::links::export_link(state, export.id, Utc::now());
    let email = SendEmail {
        to: user.email.clone(),
        template: EmailTemplate::ExportReady { link, expires_at },
    }
    .to_new_job()?;
    state
        .media
        .finish_export(export.id, Ok(size), &[email], Utc::now())
        .await?;
    tracing::info!(export_id = %export.id, size, "export ready; e-mail queued");
    Ok(())
}

async fn send_order_confirmation(
    job: crate::store::orders::SendOrderConfirmation,
    context: JobContext<AppState>,
) -> anyhow::Result<()> {
    let state = &context.app;
    let user_id = job.user_id;
    let Some(user) = state.users.by_id(user_id).await? else {
        tracing::warn!(order_id = %job.order_id, "the buyer's account is gone; no confirmation sent");
        return Ok(());
    };
    let Some(order) = state.orders.get(user_id, job.order_id).await? else {
        anyhow::bail!("order {} is not on its shard (yet)", job.order_id);
    };
    let email = mail::order_confirmation(&user.email, &user.name, &order);
    state
        .mailer
        .send(&state.settings.mail_from, &email, context.job_id)
        .await?;
    tracing::info!(order_id = %job.order_id, "order confirmation sent");
    Ok(())
}

async fn reconcile_order(
    job: crate::store::orders::ReconcileOrder,
    context: JobContext<AppState>,
) -> anyhow::Result<()> {
    let state = &context.app;
    let products = state.orders.products_of(job.order_id).await?;
    let outcome = state.orders.reconcile(job.order_id).await?;
    if outcome == crate::store::orders::Reconciled::Released {
        crate::caches::forget_products(state, products).await;
        tracing::warn!(order_id = %job.order_id, "an unfinished order was released and its stock returned");
    }
    metrics::counter!("orders_reconciled_total", "outcome" => format!("{outcome:?}").to_lowercase())
        .increment(1);
    Ok(())
}

async fn finish_cancellation(
    job: crate::store::orders::FinishCancellation,
    context: JobContext<AppState>,
) -> anyhow::Result<()> {
    context
        .app
        .orders
        .finish_cancellation(job.user_id, job.order_id)
        .await?;
    Ok(())
}

async fn roll_up_analytics(_job: RollUpAnalytics, context: JobContext<AppState>) -> anyhow::Result<()> {
    let state = &context.app;
    let started = std::time::Instant::now();
    let summary = crate::store::analytics::roll_up(
        &state.db.primary_pool(),
        &state.shards,
        state.settings.analytics_rollup_hours,
    )
    .await?;
    tracing::info!(
        event_rows = summary.event_rows,
        sales_rows = summary.sales_rows,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "analytics rolled up"
    );
    Ok(())
}

async fn maintain_store(_job: MaintainStore, context: JobContext<AppState>) -> anyhow::Result<()> {
    let state = &context.app;
    let created = crate::store::events::create_partitions(&state.shards, Utc::now().date_naive(), 7).await?;
    let ttl = chrono::Duration::from_std(state.settings.idempotency_key_ttl)?;
    let deleted = state.orders.delete_keys_before(Utc::now() - ttl).await?;
    tracing::info!(
        partitions_created = created,
        idempotency_keys_deleted = deleted,
        "store maintained"
    );
    Ok(())
}

/// Every job kind this build runs.
pub fn registry() -> Registry<AppState> {
    Registry::default()
        .register(send_email)
        .register(clean_up_sessions)
        .register(clean_up_jobs)
        .register(make_image_variants)
        .register(build_export)
        .register(send_order_confirmation)
        .register(reconcile_order)
        .register(finish_cancellation)
        .register(roll_up_analytics)
        .register(maintain_store)
}

/// The recurring schedules (patterns were validated with the configuration).
pub fn schedules(settings: &outgrow_platform::config::Settings) -> Vec<Recurring> {
    let schedules = [
        Recurring::new("sessions.cleanup", &settings.session_cleanup_schedule, || {
            CleanUpSessions {}.to_new_job()
        }),
        Recurring::new("jobs.cleanup", &settings.job_cleanup_schedule, || {
            CleanUpJobs {}.to_new_job()
        }),
        Recurring::new("analytics.rollup", &settings.analytics_rollup_schedule, || {
            RollUpAnalytics {}.to_new_job()
        }),
        Recurring::new("store.maintenance", &settings.store_maintenance_schedule, || {
            MaintainStore {}.to_new_job()
        }),
    ];
    schedules
        .into_iter()
        .filter_map(|schedule| match schedule {
            Ok(schedule) => Some(schedule),
            Err(error) => {
                tracing::error!(%error, "a recurring job has an invalid schedule and will not run");
                None
            }
        })
        .collect()
}

/// Runs the worker and the recurring scheduler until `stop`, then drains.
pub async fn run_workers(state: AppState, stop: ShutdownSignal) {
    let settings = &state.settings;
    let options = WorkerOptions {
        queues: settings.worker_queues.clone(),
        concurrency: settings.worker_concurrency,
        lease: settings.job_lease,
        poll_interval: settings.job_poll_interval,
        backoff_base: settings.job_backoff_base,
        backoff_max: settings.job_backoff_max,
        shutdown_timeout: settings.shutdown_timeout,
    };
    let store = state.db.jobs();
    let scheduler = tokio::spawn(store.clone().run_scheduler(schedules(settings), stop.clone()));
    Worker::new(store, registry(), state.clone(), options)
        .run(stop)
        .await;
    let _ = scheduler.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_job_payloads_keep_the_json_already_in_the_queue() {
        // Payloads enqueued by earlier versions (bare UUIDs) must still run, and new ones
        // must look the same.
        let id = uuid::Uuid::parse_str("01890a5d-ac96-774b-bcce-b302099a8057").expect("a UUID");
        let upload = MakeImageVariants {
            upload_id: UploadId(id),
        };
        let stored = r#"{"upload_id":"01890a5d-ac96-774b-bcce-b302099a8057"}"#;
        assert_eq!(serde_json::to_string(&upload).expect("serialises"), stored);
        assert_eq!(
            serde_json::from_str::<MakeImageVariants>(stored).expect("deserialises"),
            upload
        );
        let export = BuildExport {
            export_id: ExportId(id),
        };
        let stored = r#"{"export_id":"01890a5d-ac96-774b-bcce-b302099a8057"}"#;
        assert_eq!(serde_json::to_string(&export).expect("serialises"), stored);
        assert_eq!(
            serde_json::from_str::<BuildExport>(stored).expect("deserialises"),
            export
        );
    }
}
