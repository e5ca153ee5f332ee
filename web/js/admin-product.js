// The product form: a preview of the chosen image (a blob: URL; nothing is sent until the
// form is), and, while the image's variants are being made, polling the upload until they
// are ready, so the figures appear without a reload. Without this module the page says
// "Variants are being made…" and a reload shows them.

const POLL_EVERY_MS = 1000;
const POLL_FOR_MS = 60_000;

export function start() {
  previewChosenImage();
  const section = document.querySelector('[data-upload-id]');
  if (section && section.dataset.status === 'processing') {
    watchVariants(section);
  }
}

function previewChosenImage() {
  const input = document.querySelector('[data-image-input]');
  if (!input) return;
  const preview = document.createElement('img');
  preview.className = 'preview';
  preview.alt = 'Preview of the chosen image';
  preview.hidden = true;
  input.after(preview);
  let url = null;
  input.addEventListener('change', () => {
    if (url) URL.revokeObjectURL(url);
    url = null;
    const file = input.files?.[0];
    if (!file || !file.type.startsWith('image/')) {
      preview.hidden = true;
      preview.removeAttribute('src');
      return;
    }
    url = URL.createObjectURL(file);
    preview.src = url;
    preview.hidden = false;
  });
}

async function watchVariants(section) {
  const status = section.querySelector('[data-variants-status]');
  const list = section.querySelector('[data-variants]');
  const path = `/api/v1/uploads/${encodeURIComponent(section.dataset.uploadId)}`;
  const deadline = Date.now() + POLL_FOR_MS;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, POLL_EVERY_MS));
    let upload;
    try {
      // The session cookie authenticates the read (same origin).
      const response = await fetch(path, { headers: { accept: 'application/json' } });
      if (!response.ok) continue;
      upload = await response.json();
    } catch {
      continue; // offline for a moment: the next round tries again
    }
    section.dataset.status = upload.status;
    if (upload.status === 'ready') {
      list.replaceChildren(...figures(upload.variants));
      status.textContent = `${upload.variants.length} variants ready.`;
      return;
    }
    if (upload.status === 'failed') {
      status.textContent = `The variants could not be made${upload.error ? `: ${upload.error}` : ''}.`;
      status.classList.add('error');
      return;
    }
  }
  status.textContent = 'The variants are taking longer than usual. Reload the page to check again.';
}

// The same markup as the server's: one <figure> per variant, narrowest first.
function figures(variants) {
  return [...variants]
    .sort((a, b) => a.width - b.width)
    .map((variant) => {
      const figure = document.createElement('figure');
      const image = document.createElement('img');
      image.src = variant.url;
      image.width = variant.width;
      image.height = variant.height;
      image.alt = `The image, ${variant.width} pixels wide`;
      image.decoding = 'async';
      const caption = document.createElement('figcaption');
      caption.textContent = `${variant.width} × ${variant.height} px · ${size(variant.bytes)}`;
      figure.append(image, caption);
      return figure;
    });
}

// Decimal units with one decimal, as the server writes them.
function size(bytes) {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)} KB`;
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}
