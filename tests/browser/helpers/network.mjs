// What actually crossed the network, from the DevTools protocol: Playwright's `request` event
// does not say whether Chromium answered from its memory or disk cache, and a memory-cache hit
// may not be reported at all. Network.responseReceived (with fromDiskCache) and
// Network.requestServedFromCache tell the truth.

const lower = (headers) => Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));

/** Starts recording `page`'s network; `log.entries` grows as responses arrive. */
export async function recordNetwork(page) {
  const session = await page.context().newCDPSession(page);
  const fromCache = new Set();
  const sent = new Map();
  const log = { entries: [] };
  session.on('Network.requestWillBeSent', (event) => {
    sent.set(event.requestId, { headers: event.request.headers, type: event.type });
  });
  // The headers really sent (with the cache's If-None-Match), known only from ExtraInfo.
  session.on('Network.requestWillBeSentExtraInfo', (event) => {
    const entry = sent.get(event.requestId) ?? {};
    sent.set(event.requestId, { ...entry, headers: { ...entry.headers, ...event.headers } });
  });
  session.on('Network.requestServedFromCache', (event) => fromCache.add(event.requestId));
  session.on('Network.responseReceived', (event) => {
    const { response } = event;
    const cached = response.fromDiskCache || response.fromPrefetchCache || fromCache.has(event.requestId);
    log.entries.push({
      url: response.url,
      type: event.type,
      status: response.status,
      mimeType: response.mimeType,
      headers: lower(response.headers),
      requestId: event.requestId,
      requestHeaders: () => lower(sent.get(event.requestId)?.headers ?? {}),
      fromCache: cached,
    });
  });
  await session.send('Network.enable');
  log.fromNetwork = () => log.entries.filter((entry) => !entry.fromCache);
  log.clear = () => {
    log.entries.length = 0;
  };
  return log;
}

/** `/assets/js/app.5fed55dc44.js` → `js/app.js` (the name before fingerprinting). */
export function assetName(url) {
  const { pathname } = new URL(url);
  return pathname.replace(/^\/assets\//, '').replace(/\.[0-9a-f]{10}(\.[a-z0-9]+)$/, '$1');
}
