import { expect, test, type APIRequestContext } from '@playwright/test';
import { OrderPage } from '../pages/order-page';
import { OrdersPage } from '../pages/orders-page';

const UUID = /\/orders\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Every order id the API knows, newest first. */
async function orderIds(request: APIRequestContext): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const query = cursor ? `?limit=100&cursor=${cursor}` : '?limit=100';
    const response = await request.get(`/api/orders${query}`);
    expect(response.status()).toBe(200);
    const page = await response.json();
    ids.push(...page.orders.map((o: { id: string }) => o.id));
    cursor = page.next_cursor;
  } while (cursor);
  return ids;
}

test('creates an order with two items and shows it with its OrderCreated event', async ({ page, request }) => {
  const orders = new OrdersPage(page);
  await orders.goto();
  await orders.waitUntilInteractive();

  await orders.fillItem(1, { sku: 'E2E-LAMP', quantity: '2', unitPrice: '3.50' });
  await orders.addItem();
  await orders.fillItem(2, { sku: 'E2E-DESK', quantity: '1', unitPrice: '120' });
  await orders.submit();

  await expect(page).toHaveURL(UUID);
  const detail = new OrderPage(page);
  const id = detail.orderId();
  await expect(detail.heading).toContainText('Order');
  await expect(detail.summary).toContainText('E2E-LAMP');
  await expect(detail.summary).toContainText('E2E-DESK');
  await expect(detail.summary).toContainText('127.00');
  const created = detail.event('OrderCreated');
  await expect(created).toHaveCount(1);
  await expect(created).toContainText('v1');
  // The relay publishes it to the embedded topic log; a reload shows where it went.
  await expect(async () => {
    await page.reload();
    await expect(detail.event('OrderCreated')).toContainText('published', { timeout: 1000 });
  }).toPass({ timeout: 10_000 });
  await expect(detail.event('OrderCreated')).toContainText('outbox.event.order');

  // The API agrees: two items and exactly one event.
  const body = await (await request.get(`/api/orders/${id}`)).json();
  expect(body.order.items.map((i: { sku: string }) => i.sku)).toEqual(['E2E-LAMP', 'E2E-DESK']);
  expect(body.events.map((e: { event_type: string }) => e.event_type)).toEqual(['OrderCreated']);

  await orders.goto();
  await expect(orders.orderRow(id)).toBeVisible();
  await expect(orders.orderRow(id)).toContainText('127.00');
});

test('an invalid form shows the server errors next to the fields and writes nothing', async ({ page, request }) => {
  const before = await orderIds(request);
  const orders = new OrdersPage(page);
  await orders.goto();
  await orders.waitUntilInteractive();

  await orders.fillItem(1, { sku: 'bad sku', quantity: '0', unitPrice: 'ten' });
  await orders.submit();

  const row = orders.item(1);
  await expect(await orders.errorNextTo(row.getByLabel('SKU'))).toHaveText("may contain only A-Z, 0-9 and '-'");
  await expect(await orders.errorNextTo(row.getByLabel('Quantity'))).toHaveText('must be between 1 and 1000');
  await expect(await orders.errorNextTo(row.getByLabel('Unit price'))).toHaveText('must be an amount like 12.50');
  await expect(row.getByLabel('SKU')).toHaveAttribute('aria-invalid', 'true');
  await expect(page).toHaveURL(/\/orders$/);
  expect(await orderIds(request)).toEqual(before);
});

test.describe('before the browser bundle runs', () => {
  test.use({ javaScriptEnabled: false });

  test('the plain HTML form creates an order', async ({ page }) => {
    const orders = new OrdersPage(page);
    await orders.goto();
    await orders.fillItem(1, { sku: 'NOJS-1', quantity: '3', unitPrice: '1.25' });
    await orders.submit();

    await expect(page).toHaveURL(UUID);
    const detail = new OrderPage(page);
    await expect(detail.summary).toContainText('NOJS-1');
    await expect(detail.event('OrderCreated')).toHaveCount(1);
  });

  test('the plain HTML form shows field errors', async ({ page, request }) => {
    const before = await orderIds(request);
    const orders = new OrdersPage(page);
    await orders.goto();
    await orders.fillItem(1, { sku: 'lower', quantity: '1', unitPrice: '1' });
    await orders.submit();

    await expect(await orders.errorNextTo(orders.item(1).getByLabel('SKU'))).toHaveText(
      "may contain only A-Z, 0-9 and '-'",
    );
    expect(await orderIds(request)).toEqual(before);
  });
});

test('a busy order shows its newest events and links to the older ones', async ({ page, request }) => {
  const created = await request.post('/api/orders', {
    data: { customer_id: '0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d', items: [{ sku: 'E2E-BUSY', quantity: 1, unit_price_cents: 100 }] },
  });
  expect(created.status()).toBe(201);
  const id = (await created.json()).id;
  for (let version = 1; version < 25; version++) {
    const changed = await request.put(`/api/orders/${id}/items`, {
      data: { expected_version: version, items: [{ sku: `E2E-V${version + 1}`, quantity: 1, unit_price_cents: 100 }] },
    });
    expect(changed.status()).toBe(200);
  }
  const detail = new OrderPage(page);
  await page.goto(`/orders/${id}`);
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await expect(detail.entries()).toHaveCount(20);
  await expect(detail.entries().first()).toContainText('v25');
  await expect(detail.entries().last()).toContainText('v6');
  await expect(detail.newestEvents).toHaveCount(0);

  await detail.olderEvents.click();
  await expect(page).toHaveURL(new RegExp(`/orders/${id}\\?cursor=6$`));
  await expect(detail.entries()).toHaveCount(5);
  await expect(detail.entries().first()).toContainText('v5');
  await expect(detail.event('OrderCreated')).toContainText('v1');
  await expect(detail.olderEvents).toHaveCount(0);

  await detail.newestEvents.click();
  await expect(detail.entries()).toHaveCount(20);
  await expect(detail.entries().first()).toContainText('v25');
});

test('each event shows the W3C trace id of the request that caused it', async ({ page, request }) => {
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const created = await request.post('/api/orders', {
    headers: { traceparent },
    data: { customer_id: '0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d', items: [{ sku: 'E2E-TRACE', quantity: 1, unit_price_cents: 100 }] },
  });
  expect(created.status()).toBe(201);
  const id: string = (await created.json()).id;
  await page.goto(`/orders/${id}`);
  const order = new OrderPage(page);
  await expect(order.entries()).toHaveCount(1);
  await expect(order.entries().first().getByTestId('trace-id')).toHaveText('4bf92f3577b34da6a3ce929d0e0e4736');
});

test('an unknown order shows a not-found page with status 404', async ({ page }) => {
  const response = await page.goto('/orders/01a21b60-3c0e-7485-95f2-000000000000');
  expect(response?.status()).toBe(404);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Order not found');
});

test('the order pages hydrate under their Content-Security-Policy without a violation', async ({ page, request }) => {
  const violations: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') violations.push(m.text());
  });
  page.on('pageerror', (e) => violations.push(e.message));
  const response = await page.goto('/orders');
  expect(response?.headers()['content-security-policy']).toContain("'nonce-");
  const orders = new OrdersPage(page);
  await orders.waitUntilInteractive();
  const id = (await orderIds(request))[0];
  if (id) {
    await page.goto(`/orders/${id}`);
    await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  }
  expect(violations, 'no CSP violation or other error in the browser console').toEqual([]);
});
