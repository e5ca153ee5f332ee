//! The demo store `outgrow serve --demo` opens on an empty database: an administrator and a
//! catalog of products with photographs (drawn here, so nothing is downloaded), so that the
//! first command of the README gives a store one can shop in. It goes through the same stores
//! as the API (the uploads' WebP variants are made by the job queue, like any upload's) and
//! does nothing when the catalog already has a product.

use std::io::Cursor;

use anyhow::Context;
use chrono::Utc;
use image::{ImageEncoder, Rgb, RgbImage, codecs::jpeg::JpegEncoder};
use outgrow_domain::{Currency, Email, Money, Password, Role, UploadId, UploadStatus, UserName};
use outgrow_platform::jobs::Job;

use crate::{
    caches,
    db::media::UploadRow,
    jobs::MakeImageVariants,
    objects::original_key,
    state::AppState,
    store::catalog::{NewProduct, ProductQuery},
};

/// The demo administrator's e-mail.
pub const ADMIN_EMAIL: &str = "admin@example.test";

/// What the demo products are: a material, an object, a price (cents) and two colours.
const MATERIALS: [(&str, [u8; 3]); 6] = [
    ("Stoneware", [176, 112, 72]),
    ("Oak", [150, 110, 60]),
    ("Linen", [205, 190, 160]),
    ("Copper", [184, 98, 52]),
    ("Indigo", [52, 64, 140]),
    ("Sage", [120, 150, 110]),
];
const OBJECTS: [(&str, i64, &str); 4] = [
    ("mug", 1_800, "Holds 350 ml; dishwasher safe."),
    ("lamp", 8_900, "A warm light for a reading corner."),
    ("notebook", 1_250, "160 dotted pages, lay-flat binding."),
    ("vase", 4_200, "Hand-finished; 24 cm tall."),
];

/// What [`ensure`] did.
#[derive(Debug)]
pub struct DemoReport {
    /// Products created.
    pub products: usize,
    /// The administrator's password (generated), when the account was created now.
    pub admin_password: Option<String>,
}

/// Adds the demo store when the catalog is empty; `None` when it is not.
pub async fn ensure(state: &AppState) -> anyhow::Result<Option<DemoReport>> {
    let probe = ProductQuery {
        limit: 1,
        ..ProductQuery::default()
    };
    if !state.catalog.list(&probe).await?.is_empty() {
        return Ok(None);
    }
    let (owner, admin_password) = admin(state).await?;
    let currency = Currency::parse("EUR").map_err(|error| anyhow::anyhow!("{error}"))?;
    let mut products = 0;
    for (index, (material, colour)) in MATERIALS.iter().enumerate() {
        for (offset, (object, price, about)) in OBJECTS.iter().enumerate() {
            let image = photograph(*colour, index * OBJECTS.len() + offset)?;
            let upload = store_image(state, owner, image).await?;
            let id = state
                .catalog
                .create(&NewProduct {
                    name: format!("{material} {object}"),
                    description: format!("{material} {object}. {about}"),
                    price: Money::new(price + 100 * index as i64, currency)
                        .map_err(|error| anyhow::anyhow!("{error}"))?,
                    stock: 5 + 7 * ((index + offset) % 5) as i64,
                    image_id: Some(upload.0),
                })
                .await?;
            caches::catalog_changed(state, id).await;
            products += 1;
        }
    }
    Ok(Some(DemoReport {
        products,
        admin_password,
    }))
}

/// The demo administrator: created with a generated password, or the existing account.
async fn admin(state: &AppState) -> anyhow::Result<(outgrow_domain::UserId, Option<String>)> {
    let email = Email::parse(ADMIN_EMAIL).map_err(|error| anyhow::anyhow!("{error}"))?;
    if let Some(existing) = state.users.credentials_by_email(&email).await? {
        return Ok((existing.user.id, None));
    }
    let password = format!("demo-{}", hex::encode(rand::random::<[u8; 8]>()));
    let parsed = Password::parse(&password, Some(&email)).map_err(|error| anyhow::anyhow!("{error}"))?;
    let name = UserName::parse("Demo admin").map_err(|error| anyhow::anyhow!("{error}"))?;
    let account = state
        .passwords
        .new_account(email, name, parsed, Role::Admin)
        .await?;
    let user = state.users.create(account, &[]).await?;
    Ok((user.id, Some(password)))
}

/// Stores `jpeg` as a public upload and queues its WebP variants.
async fn store_image(
    state: &AppState,
    owner: outgrow_domain::UserId,
    jpeg: (Vec<u8>, u32, u32),
) -> anyhow::Result<UploadId> {
    let (bytes, width, height) = jpeg;
    let id = UploadId::new();
    let size = bytes.len() as i64;
    state
        .storage
        .put(&original_key(id), bytes.into())
        .await
        .context("storing a demo image")?;
    let now = Utc::now();
    let row = UploadRow {
        id,
        owner_id: owner,
        content_type: "image/jpeg".to_owned(),
        size_bytes: size,
        width: Some(i64::from(width)),
        height: Some(i64::from(height)),
        public: true,
        status: UploadStatus::Processing,
        variants: sqlx::types::Json(Vec::new()),
        error: None,
        created_at: now,
        updated_at: now,
    };
    let job = MakeImageVariants { upload_id: id }.to_new_job()?;
    state.media.insert_upload(&row, &[job]).await?;
    Ok(id)
}

/// A 1200×900 "product photograph" of object `seed % 4` (mug, lamp, notebook, vase, as in
/// [`OBJECTS`]): a lit backdrop, a soft floor shadow and the object in `colour`, shaded towards
/// its right edge. JPEG, like a camera's.
fn photograph(colour: [u8; 3], seed: usize) -> anyhow::Result<(Vec<u8>, u32, u32)> {
    const WIDTH: u32 = 1200;
    const HEIGHT: u32 = 900;
    const FLOOR: f32 = 760.0;
    let kind = seed % OBJECTS.len();
    let cx = 600.0 + ((seed * 37) % 120) as f32 - 60.0;
    let image = RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        let (x, y) = (x as f32, y as f32);
        // Backdrop: light from the top left, a darker floor below the horizon.
        let light = 1.0 - 0.25 * (x / WIDTH as f32) - 0.2 * (y / HEIGHT as f32);
        let floor = if y > FLOOR - 60.0 { 0.93 } else { 1.0 };
        let mut pixel = [
            236.0 * light * floor,
            232.0 * light * floor,
            226.0 * light * floor,
        ];
        let shadow = ((x - cx - 50.0) / 300.0).powi(2) + ((y - FLOOR) / 30.0).powi(2);
        if shadow < 1.0 {
            for channel in &mut pixel {
                *channel *= 0.72 + 0.28 * shadow;
            }
        }
        if let Some(across) = object(kind, x - cx, y) {
            let shade = 1.12 - 0.5 * across;
            for (channel, base) in pixel.iter_mut().zip(colour) {
                *channel = f32::from(base) * shade;
            }
        }
        Rgb(pixel.map(|value| value.clamp(0.0, 255.0) as u8))
    });
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(Cursor::new(&mut bytes), 85)
        .write_image(image.as_raw(), WIDTH, HEIGHT, image::ExtendedColorType::Rgb8)
        .context("encoding a demo image")?;
    Ok((bytes, WIDTH, HEIGHT))
}

/// Whether the point `dx` pixels right of the object's axis and `y` down is on object `kind`,
/// and if so how far across it (0 left edge … 1 right edge), for the shading.
fn object(kind: usize, dx: f32, y: f32) -> Option<f32> {
    let across = |half: f32| ((dx + half) / (2.0 * half)).clamp(0.0, 1.0);
    match kind {
        // Mug: a body with a handle on the right.
        0 => {
            let body = dx.abs() < 150.0 && (420.0..760.0).contains(&y);
            let ring = (dx - 150.0).hypot(y - 570.0);
            let handle = dx > 140.0 && (55.0..95.0).contains(&ring);
            (body || handle).then(|| if body { across(150.0) } else { 0.9 })
        }
        // Lamp: a shade, a stem, a base.
        1 => {
            let shade_half = 90.0 + (y - 200.0) * 0.55;
            let shade = (200.0..400.0).contains(&y) && dx.abs() < shade_half;
            let stem = (400.0..730.0).contains(&y) && dx.abs() < 14.0;
            let base = (dx / 150.0).powi(2) + ((y - 740.0) / 22.0).powi(2) < 1.0;
            if shade {
                Some(across(shade_half))
            } else {
                (stem || base).then(|| across(150.0) * 0.6 + 0.3)
            }
        }
        // Notebook: standing, with a darker spine.
        2 => {
            let cover = dx.abs() < 210.0 && (330.0..760.0).contains(&y);
            cover.then(|| if dx < -180.0 { 1.0 } else { across(210.0) * 0.5 })
        }
        // Vase: a round body and a neck.
        _ => {
            let body = (dx / 190.0).powi(2) + ((y - 600.0) / 160.0).powi(2) < 1.0;
            let neck = (300.0..480.0).contains(&y) && dx.abs() < 70.0 + (y - 300.0).max(0.0) * 0.1;
            (body || neck).then(|| across(190.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_photographs_are_jpegs_of_the_announced_size() {
        let (bytes, width, height) = photograph([176, 112, 72], 3).expect("a photograph");
        let decoded = image::load_from_memory(&bytes).expect("decodes");
        assert_eq!((decoded.width(), decoded.height()), (width, height));
        assert_eq!(crate::images::sniff(&bytes), Some("image/jpeg"));
    }
}
