import { expect, test, type APIRequestContext, type Locator, type Page } from '@playwright/test';
import { interactive } from '../pages/console';
import { OrderPage } from '../pages/order-page';
import { OrdersPage } from '../pages/orders-page';
import { admin, clearFault, failOnBrowserErrors, signIn } from '../pages/session';

// Each test ends by asserting the browser console reported no errors.
failOnBrowserErrors(clearFault);

/** An order whose cancellation the sink refuses for good; returns its id and the record's id. */
async function orderWithDeadLetter(request: APIRequestContext): Promise<{ order: string; record: number }> {
  const fault = { mode: 'poison', event_type: 'OrderCancelled' };
  expect((await request.post('/api/admin/faults', { headers: admin, data: fault })).status()).toBe(200);
  const created = await request.post('/api/orders', {
    data: {
      customer_id: '0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d',
      items: [{ sku: 'E2E-PATH', quantity: 1, unit_price_cents: 250 }],
    },
  });
  expect(created.status()).toBe(201);
  const order: string = (await created.json()).id;
  const cancel = await request.post(`/api/orders/${order}/cancel`, { data: { reason: 'e2e', expected_version: 1 } });
  expect(cancel.status()).toBe(200);
  let record = 0;
  await expect
    .poll(async () => {
      const page = await (await request.get(`/api/admin/dlq?aggregate_id=${order}`, { headers: admin })).json();
      record = page.items[0]?.id ?? 0;
      return record;
    })
    .toBeGreaterThan(0);
  return { order, record };
}

/** The box of `locator`, which must be shown. */
async function box(locator: Locator) {
  const b = await locator.boundingBox();
  expect(b, 'shown').not.toBeNull();
  return b!;
}

/** The box of the text of `locator` (a label's own box stretches to its column, its text may
 * not fit in it). */
async function textBox(locator: Locator) {
  return locator.evaluate((el) => {
    const range = document.createRange();
    range.selectNodeContents(el);
    const r = range.getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  });
}

/** Whether two boxes share any area. */
function overlap(a: { x: number; y: number; width: number; height: number }, b: typeof a): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

test('an operator sees a poisoned event dead-lettered with a link to its record, the others published', async ({ page, request }, info) => {
  const { order, record } = await orderWithDeadLetter(request);
  await signIn(page);
  await page.goto(`/orders/${order}`);
  await interactive(page);
  const orderPage = new OrderPage(page);
  const cancelled = orderPage.event('OrderCancelled');
  await expect(cancelled.locator('[data-state="dead_lettered"]')).toContainText('dead-lettered');
  const link = cancelled.getByTestId('dead-letter-link');
  await expect(link).toHaveText(`dead letter #${record}`);
  await expect(link).toHaveAttribute('href', /^\/console\/dlq\?q=[0-9a-f-]{36}$/);
  await expect(orderPage.event('OrderCreated').locator('[data-state="published"]')).toContainText('published');
  await expect(cancelled.getByText('not yet published')).toHaveCount(0);

  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 900 });
    await page.screenshot({ path: info.outputPath(`order-page-${width}.png`), fullPage: true });
  }

  // The record is the one the link names.
  await link.click();
  await expect(page).toHaveURL(/\/console\/dlq\?q=/);
  await interactive(page);
  await expect(page.getByText(/OrderCancelled/).first()).toBeVisible();
});

test('the order form shows the unit of the price, and its labels do not run into each other', async ({ page }, info) => {
  const orders = new OrdersPage(page);
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 900 });
    await orders.goto();
    await orders.waitUntilInteractive();
    const row = orders.item(1);
    const labels = ['SKU', 'Quantity', 'Unit price'].map((name) => row.locator('label', { hasText: name }));
    const boxes = await Promise.all(labels.map(textBox));
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        expect(overlap(boxes[i], boxes[j]), `labels ${i} and ${j} at ${width} px`).toBe(false);
      }
    }
    // Each label's text stays within its field (wider than its column, it spills into the next).
    for (const label of labels) {
      const [text, field] = [await textBox(label), await box(label.locator('xpath=..'))];
      expect(text.x + text.width, `label within its field at ${width} px`).toBeLessThanOrEqual(field.x + field.width + 0.5);
    }
    const price = row.getByLabel('Unit price');
    await expect(row.locator('.field-unit_price .field-hint')).toHaveText(/cents/);
    expect(await price.getAttribute('aria-describedby')).toContain('-hint');
    await page.screenshot({ path: info.outputPath(`order-form-${width}.png`), fullPage: true });
  }
});
