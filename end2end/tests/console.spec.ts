import { expect, test, type APIRequestContext } from '@playwright/test';
import { ADMIN_TOKEN, DashboardPage, DlqPage, RelayPage, SignInPage, interactive } from '../pages/console';
import { admin, clearFault, failOnBrowserErrors, signIn } from '../pages/session';

/** Browser console errors of the current test; each test ends by asserting there were none. */
const consoleErrors = failOnBrowserErrors(async (request) => {
  // Leave the relay as the other tests expect it: streaming, no fault, running.
  await clearFault(request);
  await request.post('/api/admin/relay/mode', { headers: admin, data: { mode: 'streaming' } });
  await request.post('/api/admin/relay/resume', { headers: admin });
});

async function createOrder(request: APIRequestContext, sku = 'E2E-CONSOLE'): Promise<string> {
  const response = await request.post('/api/orders', {
    data: {
      customer_id: '0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d',
      items: [{ sku, quantity: 1, unit_price_cents: 250 }],
    },
  });
  expect(response.status()).toBe(201);
  return (await response.json()).id;
}

test('console pages need a session: wrong token refused, right one admitted, sign-out ends it', async ({ page }) => {
  await page.goto('/console/dlq');
  await expect(page).toHaveURL('/console/sign-in?next=%2Fconsole%2Fdlq');
  const signIn = new SignInPage(page);

  await signIn.signIn('definitely-not-the-admin-token');
  await expect(page).toHaveURL(/\/console\/sign-in\?error=invalid/);
  await expect(signIn.error).toContainText('That token is not right');
  const cookies = await page.context().cookies();
  expect(cookies.find((c) => c.name === 'outbox_session')).toBeUndefined();

  await signIn.signIn(ADMIN_TOKEN);
  await expect(page).toHaveURL('/console/dlq');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Dead letter queue');
  const session = (await page.context().cookies()).find((c) => c.name === 'outbox_session');
  expect(session?.httpOnly).toBe(true);
  expect(session?.sameSite).toBe('Strict');

  await new DlqPage(page).signOut();
  await expect(page).toHaveURL('/console/sign-in?signed_out=1');
  await page.goto('/console');
  await expect(page).toHaveURL('/console/sign-in?next=%2Fconsole');
});

test('the dashboard moves with orders created through the API, without a reload', async ({ page, request }) => {
  await signIn(page);
  const dashboard = new DashboardPage(page);
  await dashboard.goto();
  await expect(dashboard.processed).not.toHaveText('–');
  const before = await DashboardPage.number(dashboard.processed);
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));

  for (let i = 0; i < 40; i++) await createOrder(request);

  await expect.poll(() => DashboardPage.number(dashboard.processed), { timeout: 5_000 }).toBeGreaterThanOrEqual(before + 40);
  await expect.poll(() => DashboardPage.number(dashboard.throughput), { timeout: 5_000, intervals: [100] }).toBeGreaterThan(0);
  await expect(dashboard.pending).toHaveText('0');
  expect(await page.evaluate(() => (window as unknown as { marker: number }).marker)).toBe(42);
});

test('the dashboard says when the live feed is down and goes live again by itself', async ({ page }) => {
  await signIn(page);
  // Every attempt to open the feed is refused, as while the server is unreachable.
  const feedUrl = '**/api/live';
  await page.route(feedUrl, (route) => route.abort('connectionrefused'));
  const dashboard = new DashboardPage(page);
  await page.goto('/console');
  await interactive(page);
  await expect(dashboard.feed).toHaveText('Disconnected: reconnecting…');
  await expect(dashboard.feed).toHaveClass(/feed-down/);

  // The browser retries on its own; once the feed can be reached it is live, without a reload.
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 7));
  await page.unroute(feedUrl);
  await expect(dashboard.feed).toHaveText('Live', { timeout: 15_000 });
  expect(await page.evaluate(() => (window as unknown as { marker: number }).marker)).toBe(7);
  // The refused connections are the only errors the browser may report here.
  consoleErrors.ignore((e) => e.includes('net::ERR_CONNECTION_REFUSED'));
});

test('fault down opens the breaker while pending grows; none closes it and drains the backlog', async ({ page, request }) => {
  await signIn(page, '/console/relay');
  const relay = new RelayPage(page);
  await relay.goto();
  await relay.setFault('down');

  const dashboard = new DashboardPage(page);
  await dashboard.goto();
  await expect(dashboard.faultBanner).toContainText('down');
  for (let i = 0; i < 5; i++) await createOrder(request);
  await expect(dashboard.breaker).toHaveText('OPEN', { timeout: 15_000 });
  await expect.poll(() => DashboardPage.number(dashboard.pending)).toBeGreaterThanOrEqual(5);
  for (let i = 0; i < 5; i++) await createOrder(request);
  await expect.poll(() => DashboardPage.number(dashboard.pending)).toBeGreaterThanOrEqual(10);

  await relay.goto();
  await relay.setFault('none');
  await dashboard.goto();
  await expect(dashboard.breaker).toHaveText('CLOSED', { timeout: 15_000 });
  await expect(dashboard.pending).toHaveText('0', { timeout: 15_000 });
  await expect(dashboard.faultBanner).toHaveCount(0);
  await expect(page.getByTestId('transitions')).toContainText('closed → open');
});

test('a poisoned OrderCancelled lands in the DLQ and is replayed onto the topic', async ({ page, request }) => {
  await signIn(page, '/console/relay');
  const relay = new RelayPage(page);
  await relay.goto();
  await relay.setFault('poison', { eventType: 'OrderCancelled' });

  const id = await createOrder(request, 'E2E-POISON');
  const cancel = await request.post(`/api/orders/${id}/cancel`, {
    data: { expected_version: 1, reason: 'changed my mind' },
  });
  expect(cancel.status()).toBe(200);

  const dlq = new DlqPage(page);
  const row = dlq.rowFor('OrderCancelled', id);
  await expect(async () => {
    await dlq.goto(`?aggregate_id=${id}`);
    await expect(row).toBeVisible({ timeout: 1_000 });
  }).toPass({ timeout: 10_000 });
  await expect(row.getByTestId('dlq-status')).toHaveText('pending');

  await relay.goto();
  await relay.setFault('none');
  await dlq.goto(`?aggregate_id=${id}`);
  await row.getByRole('button', { name: 'Open' }).click();
  await expect(dlq.record).toContainText('simulated poison message');
  await expect(dlq.record.locator('pre.payload')).toContainText('"reason": "changed my mind"');
  await dlq.record.getByRole('button', { name: 'Replay' }).click();
  await expect(dlq.notice).toContainText('replayed');
  await expect(dlq.record.getByTestId('record-status')).toHaveText('replayed');
  await expect(row.getByTestId('dlq-status')).toHaveText('replayed');

  // The event is on the topic now, under its original id.
  const letters = await (await request.get(`/api/admin/dlq?aggregate_id=${id}`, { headers: admin })).json();
  const eventId = letters.items[0].event.event_id;
  const topic = await (await request.get('/api/topics/outbox.event.order/messages?from_offset=0&limit=1000')).json();
  const ids = topic.messages.map((m: { headers: { event_id: string } }) => m.headers.event_id);
  expect(ids).toContain(eventId);
});

test('switching the relay mode from the relay page shows on the dashboard', async ({ page }) => {
  await signIn(page, '/console/relay');
  const relay = new RelayPage(page);
  await relay.goto();
  await relay.switchMode('polling');
  await expect(relay.mode).toHaveText('polling');
  const dashboard = new DashboardPage(page);
  await dashboard.goto();
  await expect(dashboard.mode).toHaveText('polling');
  await relay.goto();
  await relay.switchMode('streaming');
  await dashboard.goto();
  await expect(dashboard.mode).toHaveText('streaming');
});

test('console pages fit 1280 and 390 px wide; screenshots are kept', async ({ page }, testInfo) => {
  await signIn(page);
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 900 });
    for (const [name, path] of [
      ['dashboard', '/console'],
      ['dlq', '/console/dlq'],
      ['relay', '/console/relay'],
    ]) {
      await page.goto(path);
      await interactive(page);
      await expect(page.getByText('Loading…')).toHaveCount(0);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, `${name} at ${width} px has no horizontal scroll`).toBeLessThanOrEqual(0);
      const file = testInfo.outputPath(`console-${name}-${width}.png`);
      await page.screenshot({ path: file, fullPage: true });
      await testInfo.attach(`${name} at ${width} px`, { path: file, contentType: 'image/png' });
    }
  }
});
