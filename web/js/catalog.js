// The catalog: "More products" appends the next page in place (the link still works without
// JavaScript); the URL follows, so a reload or a shared link shows the same page.

export function start() {
  const list = document.querySelector('[data-products]');
  document.addEventListener('click', async (event) => {
    const link = event.target.closest?.('a[data-next]');
    if (!link || !list) return;
    event.preventDefault();
    link.setAttribute('aria-busy', 'true');
    try {
      const response = await fetch(link.href, { headers: { accept: 'text/html' } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const next = new DOMParser().parseFromString(await response.text(), 'text/html');
      for (const item of next.querySelectorAll('[data-products] > li')) {
        list.append(document.adoptNode(item));
      }
      const more = next.querySelector('a[data-next]');
      if (more) {
        link.href = more.href;
        link.removeAttribute('aria-busy');
      } else {
        link.closest('p')?.remove();
      }
    } catch (error) {
      // Fall back to following the link.
      location.href = link.href;
    }
  });
}
