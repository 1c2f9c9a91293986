import { mkdirSync } from 'node:fs';
import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import { DlqPage } from '../pages/console';
import { admin, clearFault, failOnBrowserErrors, signIn as signInAt } from '../pages/session';

// The DLQ page's failure groups (replayed as a whole after a confirmation, with progress) and
// edit-and-replay. Dead letters come from fault injection (poisoned OrderCreated events).

/** Screenshots land here, outside test-results (which every run empties). */
const SCREENS = '../target/screens';

const consoleErrors = failOnBrowserErrors(clearFault);

const signIn = (page: Page) => signInAt(page, '/console/dlq');

async function setFault(request: APIRequestContext, data: object) {
  const response = await request.post('/api/admin/faults', { headers: admin, data });
  expect(response.status()).toBe(200);
}

/** Creates `count` orders while OrderCreated is poisoned; returns their ids once every one is
 * a pending dead letter, with the sink healthy again. */
async function deadLetteredOrders(request: APIRequestContext, count: number, sku: string): Promise<string[]> {
  await setFault(request, { mode: 'poison', event_type: 'OrderCreated' });
  const ids: string[] = [];
  for (let n = 0; n < count; n++) {
    const response = await request.post('/api/orders', {
      data: {
        customer_id: '0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d',
        items: [{ sku: `${sku}-${n}`, quantity: 1, unit_price_cents: 250 }],
      },
    });
    expect(response.status()).toBe(201);
    ids.push((await response.json()).id);
  }
  await expect(async () => {
    const page = await (await request.get('/api/admin/dlq?status=pending&limit=200', { headers: admin })).json();
    const dead = new Set(page.items.map((d: { event: { aggregate_id: string } }) => d.event.aggregate_id));
    expect(ids.every((id) => dead.has(id))).toBe(true);
  }).toPass({ timeout: 10_000 });
  await setFault(request, { mode: 'none' });
  return ids;
}

/** Topic messages carrying `eventId`. */
async function published(request: APIRequestContext, eventId: string) {
  const topic = await (await request.get('/api/topics/outbox.event.order/messages?from_offset=0&limit=1000')).json();
  return topic.messages.filter((m: { headers: Record<string, string> }) => m.headers.event_id === eventId);
}

/** Checks the page fits `width` without a horizontal scroll and keeps a screenshot. */
async function fitsAndShoot(page: Page, name: string, width: number) {
  await page.setViewportSize({ width, height: 900 });
  // Let the new width lay out and paint before measuring and capturing it.
  await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow, `${name} at ${width} px has no horizontal scroll`).toBeLessThanOrEqual(0);
  mkdirSync(SCREENS, { recursive: true });
  await page.screenshot({ path: `${SCREENS}/${name}-${width}.png`, fullPage: true });
}

test('the DLQ opens on failure groups; a group opens as a list and replays after a confirmation', async ({ page, request }) => {
  const orders = await deadLetteredOrders(request, 3, 'E2E-GROUP');
  await signIn(page);
  const dlq = new DlqPage(page);
  await dlq.goto();
  const group = page.getByTestId('dlq-group').filter({ hasText: 'OrderCreated' });
  await expect(group).toHaveCount(1);
  await expect(group.getByTestId('group-count')).toHaveText('3');
  await expect(group).toContainText('permanent: simulated poison message (fault injection)');
  await expect(group.getByRole('button', { name: 'Replay group' })).toBeVisible();
  await expect(group.getByRole('button', { name: 'Discard group' })).toBeVisible();
  for (const width of [1280, 390]) await fitsAndShoot(page, 'dlq-groups', width);
  await page.setViewportSize({ width: 1280, height: 900 });

  // A group opens its records, with the filter set.
  const key = await group.getAttribute('data-group');
  await group.getByTestId('group-open').click();
  await expect(page).toHaveURL(new RegExp(`event_type=OrderCreated.*group=${key}`));
  await expect(page.getByTestId('group-filter')).toContainText('simulated poison message');
  await expect(page.locator('tr[data-dlq-id]')).toHaveCount(3);
  for (const width of [1280, 390]) await fitsAndShoot(page, 'dlq-group-records', width);
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.getByRole('link', { name: 'All groups' }).click();
  await expect(page.getByTestId('dlq-groups')).toBeVisible();

  // Replay: a confirmation first, then progress while the call runs (held until seen).
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route('**/api/admin/dlq/groups/*/replay', async (route) => {
    await held;
    await route.continue();
  });
  await group.getByRole('button', { name: 'Replay group' }).click();
  await expect(group).toContainText('Replay all 3 record(s) of this group?');
  await group.getByRole('button', { name: 'Yes, replay' }).click();
  await expect(page.getByTestId('group-progress')).toContainText('Replaying the group: 0 of 3 done');
  release();
  await expect(dlq.notice).toContainText('Group replayed: 3 replayed, 0 failed, 0 skipped, 0 left.');
  await expect(page.getByTestId('group-progress')).toHaveCount(0);
  await expect(page.getByTestId('groups-empty')).toBeVisible();

  // Each event is on the topic once, under its original id.
  const letters = await (await request.get('/api/admin/dlq?status=replayed&limit=200', { headers: admin })).json();
  for (const id of orders) {
    const letter = letters.items.find((d: { event: { aggregate_id: string } }) => d.event.aggregate_id === id);
    expect(letter, `order ${id} replayed`).toBeTruthy();
    expect(await published(request, letter.event.event_id)).toHaveLength(1);
  }
});

test('a dead letter is edited in the console, then replayed with the edited payload', async ({ page, request }) => {
  const [order] = await deadLetteredOrders(request, 1, 'E2E-EDIT');
  await signIn(page);
  const dlq = new DlqPage(page);
  await dlq.goto(`?aggregate_id=${order}`);
  await page.locator('tr[data-dlq-id]').getByRole('button', { name: 'Open' }).click();
  await dlq.record.getByRole('button', { name: 'Edit payload' }).click();
  const editor = dlq.record.getByLabel('Edit payload (JSON object; order_id must stay)');
  const original = JSON.parse(await editor.inputValue());
  expect(original.order_id).toBe(order);

  // A changed order_id is refused with the API's message; nothing is stored.
  await editor.fill(JSON.stringify({ ...original, order_id: '0193a5e0-0000-7000-8000-0000000000aa' }));
  await dlq.record.getByRole('button', { name: 'Save payload' }).click();
  await expect(dlq.notice).toContainText('validation');
  await expect(dlq.record.getByTestId('edited-payload')).toHaveCount(0);
  // The browser logs that refused request; it is the one error this test expects.
  const refused = (e: string) => e.includes('status of 422');
  await expect.poll(() => consoleErrors.list.some(refused)).toBe(true);
  consoleErrors.ignore(refused);

  await dlq.record.getByRole('button', { name: 'Edit payload' }).click();
  await editor.fill(JSON.stringify({ ...original, note: 'fixed by e2e' }, null, 2));
  await dlq.record.getByRole('button', { name: 'Save payload' }).click();
  await expect(dlq.notice).toContainText('edited');
  await expect(dlq.record.getByTestId('edited-payload')).toContainText('"note": "fixed by e2e"');
  await expect(dlq.record.getByTestId('original-payload')).not.toContainText('fixed by e2e');
  await expect(dlq.record).toContainText('Original payload');
  for (const width of [1280, 390]) await fitsAndShoot(page, 'dlq-edited-record', width);
  await page.setViewportSize({ width: 1280, height: 900 });

  await dlq.record.getByRole('button', { name: 'Replay', exact: true }).click();
  await expect(dlq.record.getByTestId('record-status')).toHaveText('replayed');
  const eventId = await dlq.record.locator('dd.mono').first().innerText();
  const messages = await published(request, eventId);
  expect(messages).toHaveLength(1);
  expect(messages[0].value.note).toBe('fixed by e2e');
  expect(messages[0].headers.outbox_edited).toBe('true');
  expect(messages[0].headers.event_type).toBe('OrderCreated');
});
