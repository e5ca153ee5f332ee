//! What an upload is (sniffed from its bytes, never from its name or the client's claim) and
//! the WebP variants made from images, for `srcset`.

use std::io::Cursor;

use anyhow::Context;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};

use crate::db::media::Variant;

/// Widths of the variants, for `srcset`; never larger than the original.
pub const VARIANT_WIDTHS: [u32; 3] = [400, 800, 1200];
/// Lossy WebP quality (0–100): visually close to the source at a fraction of the size.
const WEBP_QUALITY: f32 = 80.0;

/// The accepted image types, by their magic numbers.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Width and height from the header alone (no pixel is decoded), or `None` when the header
/// is not within `head` or declares an image without pixels: a GIF may say it is 0 pixels
/// wide and still decode (found by the image_decode fuzz target: the variants job divided by
/// that width and panicked).
pub fn dimensions(head: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(Cursor::new(head))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
        .filter(|(width, height)| *width > 0 && *height > 0)
}

/// The widths to render an image `width` pixels wide at: the standard widths below it, or
/// its own width when it is narrower than all of them (never upscaled).
pub fn variant_widths(width: u32) -> Vec<u32> {
    let below: Vec<u32> = VARIANT_WIDTHS
        .iter()
        .copied()
        .filter(|target| *target <= width)
        .collect();
    if below.is_empty() { vec![width] } else { below }
}

/// The longest side a WebP image can have.
const WEBP_MAX_SIDE: u32 = 16383;

/// Decodes `original` (refusing more than `max_pixels`) and encodes each variant as WebP.
pub fn render_variants(original: &[u8], max_pixels: u64) -> anyhow::Result<Vec<(Variant, Vec<u8>)>> {
    let (width, height) = dimensions(original).context("reading the image header")?;
    let mut reader = image::ImageReader::new(Cursor::new(original)).with_guessed_format()?;
    anyhow::ensure!(
        u64::from(width) * u64::from(height) <= max_pixels,
        "{width}×{height} pixels is over the limit of {max_pixels}"
    );
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits);
    let rgba = reader.decode().context("decoding the image")?.into_rgba8();
    let source = Image::from_vec_u8(width, height, rgba.into_raw(), PixelType::U8x4)?;
    let mut resizer = Resizer::new();
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    variant_widths(width)
        .into_iter()
        .map(|target_width| {
            let target_height =
                ((u64::from(height) * u64::from(target_width)) / u64::from(width)).max(1) as u32;
            // WebP holds at most 16383 pixels a side: a long thin image (found by the
            // image_decode fuzz target) made the encoder's own `unwrap` panic in the job.
            anyhow::ensure!(
                target_width <= WEBP_MAX_SIDE && target_height <= WEBP_MAX_SIDE,
                "a {target_width}×{target_height} variant is over WebP's {WEBP_MAX_SIDE} pixels a side"
            );
            let mut target = Image::new(target_width, target_height, PixelType::U8x4);
            resizer.resize(&source, &mut target, &options)?;
            let encoded = webp::Encoder::from_rgba(target.buffer(), target_width, target_height)
                .encode_simple(false, WEBP_QUALITY)
                .map_err(|error| {
                    anyhow::anyhow!("encoding a {target_width}×{target_height} WebP: {error:?}")
                })?;
            let bytes = encoded.to_vec();
            Ok((
                Variant {
                    width: target_width,
                    height: target_height,
                    bytes: bytes.len() as u64,
                },
                bytes,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .expect("encode");
        bytes
    }

    #[test]
    fn types_are_told_by_their_bytes() {
        assert_eq!(sniff(&png(2, 2)), Some("image/png"));
        assert_eq!(sniff(b"GIF89a...."), Some("image/gif"));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"%PDF-1.7"), None);
        assert_eq!(sniff(b"<svg xmlns="), None);
    }

    #[test]
    fn variants_are_never_wider_than_the_original() {
        assert_eq!(variant_widths(2000), vec![400, 800, 1200]);
        assert_eq!(variant_widths(1000), vec![400, 800]);
        assert_eq!(variant_widths(300), vec![300]);
    }

    #[test]
    fn variants_keep_the_aspect_ratio_and_are_webp() {
        let variants = render_variants(&png(1000, 500), 50_000_000).expect("render");
        let sizes: Vec<(u32, u32)> = variants
            .iter()
            .map(|(variant, _)| (variant.width, variant.height))
            .collect();
        assert_eq!(sizes, vec![(400, 200), (800, 400)]);
        for (variant, bytes) in &variants {
            assert_eq!(sniff(bytes), Some("image/webp"));
            assert_eq!(dimensions(bytes), Some((variant.width, variant.height)));
        }
    }

    #[test]
    fn a_variant_over_webps_side_limit_is_an_error_not_a_panic() {
        // 2 × 17,000 pixels: within the pixel limit, but its one variant (its own width, never
        // upscaled) is taller than WebP allows.
        let error = render_variants(&png(2, 17_000), 50_000_000).expect_err("refused");
        assert!(error.to_string().contains("16383"), "{error}");
    }

    /// A GIF whose logical screen is `width` × `height` around one 1×1 frame.
    fn gif_with_screen(width: u16, height: u16) -> Vec<u8> {
        let mut bytes = Vec::new();
        image::RgbImage::from_pixel(1, 1, image::Rgb([200, 10, 10]))
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Gif)
            .expect("encode");
        bytes[6..8].copy_from_slice(&width.to_le_bytes());
        bytes[8..10].copy_from_slice(&height.to_le_bytes());
        bytes
    }

    #[test]
    fn an_image_without_pixels_has_no_dimensions_and_no_variants() {
        assert_eq!(dimensions(&gif_with_screen(1, 1)), Some((1, 1)));
        for (width, height) in [(0, 1), (1, 0), (0, 0), (0, 500)] {
            let gif = gif_with_screen(width, height);
            assert_eq!(dimensions(&gif), None, "{width}×{height}");
            assert!(render_variants(&gif, 50_000_000).is_err(), "{width}×{height}");
        }
    }

    #[test]
    fn an_image_over_the_pixel_limit_is_refused_before_decoding() {
        assert!(render_variants(&png(100, 100), 5_000).is_err());
    }
}
