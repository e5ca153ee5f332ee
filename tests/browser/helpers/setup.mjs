// The data set's preparation (run by scripts/browser-test and scripts/screenshots as
// `node helpers/setup.mjs`, BEFORE `outgrow seed`, so these products have the lowest ids and
// fill the catalog's first page): the fixed data set every spec and screenshot relies on, created
// through the JSON API the way a client would: the administrator uploads four generated photos
// (public), creates a product per photo and waits until the variant job has made the WebP
// variants; a regular user registers. Both sign in with the session cookie, and their browser
// storage states are saved for the specs. Everything lands in RUN_DIR/data.json.
// (`outgrow seed` adds volume afterwards, in scripts/browser-test; the screenshots run without it.)
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { request } from '@playwright/test';
import { ADMIN, BASE_URL, RUN_DIR } from './env.mjs';

/** The products, in the order the specs refer to them (`data.products[0]` has a wide photo). */
export const PRODUCTS = [
  { file: 'mug.jpg', mime: 'image/jpeg', name: 'Stoneware mug', price_minor: 1450, stock: 40,
    description: 'A hand-glazed mug that holds a generous 350 ml.' },
  { file: 'lamp.jpg', mime: 'image/jpeg', name: 'Brass desk lamp', price_minor: 8900, stock: 12,
    description: 'A warm, dimmable lamp with a weighted brass base.' },
  { file: 'plant.png', mime: 'image/png', name: 'Potted fern', price_minor: 2200, stock: 25,
    description: 'A Boston fern in a 14 cm terracotta pot.' },
  { file: 'chair.png', mime: 'image/png', name: 'Oak chair', price_minor: 15900, stock: 6,
    description: 'A solid oak dining chair, oiled, with a woven seat.' },
];

/** The regular account the user pages are seen with. */
export const USER = { name: 'Ann Browser', email: 'ann.browser@example.test', password: 'browser-user-password' };

async function expectOk(response, what) {
  if (!response.ok()) {
    throw new Error(`${what}: HTTP ${response.status()} ${await response.text()}`);
  }
  return response.json();
}

/** A request context signed in as `account` with the session cookie (a browser's sign-in). */
async function signedIn(account) {
  const context = await request.newContext({ baseURL: BASE_URL });
  const body = await expectOk(
    await context.post('/api/v1/auth/login', {
      data: { email: account.email, password: account.password, session_cookie: true },
    }),
    `sign in as ${account.email}`,
  );
  return { context, token: body.access_token };
}

async function waitReady(api, token, uploadId) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const upload = await expectOk(
      await api.get(`/api/v1/uploads/${uploadId}`, { headers: { authorization: `Bearer ${token}` } }),
      'read an upload',
    );
    if (upload.status === 'ready') return upload;
    if (upload.status === 'failed' || Date.now() > deadline) {
      throw new Error(`upload ${uploadId} is ${upload.status}: ${upload.error ?? 'timed out'}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export default async function prepare() {
  mkdirSync(RUN_DIR, { recursive: true });
  const started = Date.now();
  const admin = await signedIn(ADMIN);
  const auth = { authorization: `Bearer ${admin.token}` };
  const products = [];
  for (const product of PRODUCTS) {
    const upload = await expectOk(
      await admin.context.post('/api/v1/uploads', {
        headers: auth,
        multipart: {
          public: 'true',
          file: {
            name: product.file,
            mimeType: product.mime,
            buffer: readFileSync(new URL(`../fixtures/${product.file}`, import.meta.url)),
          },
        },
      }),
      `upload ${product.file}`,
    );
    const created = await expectOk(
      await admin.context.post('/api/v1/products', {
        headers: auth,
        data: {
          name: product.name,
          description: product.description,
          price_minor: product.price_minor,
          currency: 'EUR',
          stock: product.stock,
          image_id: upload.id,
        },
      }),
      `create ${product.name}`,
    );
    products.push({ id: created.id, name: product.name, stock: product.stock, upload_id: upload.id });
  }
  const variants = {};
  for (const product of products) {
    const upload = await waitReady(admin.context, admin.token, product.upload_id);
    variants[product.upload_id] = upload.variants.map((variant) => variant.width);
  }
  await admin.context.storageState({ path: path.join(RUN_DIR, 'admin.json') });

  const anonymous = await request.newContext({ baseURL: BASE_URL });
  const registered = await anonymous.post('/api/v1/auth/register', { data: USER });
  if (registered.status() !== 202) {
    throw new Error(`register ${USER.email}: HTTP ${registered.status()} ${await registered.text()}`);
  }
  const user = await signedIn(USER);
  await user.context.storageState({ path: path.join(RUN_DIR, 'user.json') });
  if (process.env.OUTGROW_BROWSER_SAMPLE_ORDER === '1') {
    // The screenshots' "Your orders" shows one order rather than an empty list.
    await expectOk(
      await user.context.post('/api/v1/orders', {
        headers: { authorization: `Bearer ${user.token}`, 'idempotency-key': 'browser-sample-order' },
        data: { items: [{ product_id: products[0].id, quantity: 1 }, { product_id: products[2].id, quantity: 2 }] },
      }),
      'place the sample order',
    );
  }

  const data = { baseURL: BASE_URL, products, variants, user: USER, admin: { email: ADMIN.email } };
  writeFileSync(path.join(RUN_DIR, 'data.json'), JSON.stringify(data, null, 2));
  for (const context of [admin.context, anonymous, user.context]) await context.dispose();
  console.log(`data set ready in ${Date.now() - started} ms: ${products.length} products with images, 1 user`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  prepare().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
