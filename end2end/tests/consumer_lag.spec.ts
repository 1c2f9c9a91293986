import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, test, type APIRequestContext } from '@playwright/test';
import { RelayPage, interactive } from '../pages/console';
import { admin, failOnBrowserErrors, signIn } from '../pages/session';

// The relay page's "Consumer groups" table against a real Kafka-protocol broker: the second
// server of playwright.config.ts publishes to tansu, and a real consumer group (kcat, through
// scripts/kcat) reads part of the topic and commits. tansu refuses ListGroups, so the server
// finds the group through KAFKA_LAG_GROUPS, which the config sets to E2E_LAG_GROUP.

const KAFKA_BASE_URL = process.env.E2E_KAFKA_BASE_URL!;
const BROKERS = process.env.E2E_KAFKA_BROKERS!;
const GROUP = process.env.E2E_LAG_GROUP!;
const TOPIC = 'outbox.event.order';
const ORDERS = 9;
const FIRST_READ = 4;

test.use({ baseURL: KAFKA_BASE_URL });

failOnBrowserErrors();

type Offsets = { topic: string; partition: number; low: number; high: number };
type Lag = { group: string; topic: string; partition: number; committed: number | null; end: number; lag: number };

const run = promisify(execFile);

/** Reads up to `count` messages (all there are, without it) of the topic as a member of the
 * group, from the group's committed offsets (the start of each partition when it has none),
 * and exits at the end of the partitions; the consumer commits what it read as it closes
 * (librdkafka's auto-commit). Returns the (partition, offset) pairs read. */
async function consume(count?: number): Promise<string[]> {
  const args = ['-b', BROKERS, '-G', GROUP, '-X', 'auto.offset.reset=earliest', '-e', '-q', '-f', '%p %o\n'];
  if (count !== undefined) args.push('-c', String(count));
  args.push(TOPIC);
  const { stdout } = await run(join(__dirname, '..', '..', 'scripts', 'kcat'), args, { timeout: 20_000 });
  return stdout.split('\n').filter((l) => l !== '');
}

async function offsets(request: APIRequestContext): Promise<Offsets[]> {
  const response = await request.get('/api/admin/sink/offsets', { headers: admin });
  expect(response.status()).toBe(200);
  return ((await response.json()) as Offsets[]).filter((p) => p.topic === TOPIC);
}

async function lag(request: APIRequestContext): Promise<Lag[]> {
  const response = await request.get(`/api/admin/sink/consumer-groups?group=${GROUP}`, { headers: admin });
  expect(response.status()).toBe(200);
  return ((await response.json()).partitions as Lag[]).filter((p) => p.topic === TOPIC);
}

test('the relay page shows a real consumer group’s lag per partition, down to 0 without a reload', async ({ page, request }, info) => {
  const before = (await offsets(request)).reduce((n, p) => n + p.high, 0);
  for (let n = 0; n < ORDERS; n++) {
    const response = await request.post('/api/orders', {
      data: {
        customer_id: '0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d',
        items: [{ sku: `E2E-LAG-${n}`, quantity: 1, unit_price_cents: 250 }],
      },
    });
    expect(response.status()).toBe(201);
  }
  // Each order's OrderCreated lands on the broker; the relay publishes them on its own.
  await expect.poll(async () => (await offsets(request)).reduce((n, p) => n + p.high, 0)).toBe(before + ORDERS);
  const ends = await offsets(request);
  expect(ends.map((p) => p.partition).sort()).toEqual([0, 1, 2]);

  // The group reads part of the topic and commits.
  expect(await consume(FIRST_READ)).toHaveLength(FIRST_READ);
  let groups: Lag[] = [];
  await expect
    .poll(async () => {
      groups = await lag(request);
      return groups.reduce((n, p) => n + (p.committed ?? 0), 0);
    })
    .toBeGreaterThanOrEqual(FIRST_READ);
  // The API's numbers agree with the topic: each partition's end is its next offset, the lag
  // what the group has still to read there, and the group is FIRST_READ messages in.
  expect(groups.map((p) => p.partition).sort()).toEqual([0, 1, 2]);
  for (const p of groups) {
    const topic = ends.find((e) => e.partition === p.partition)!;
    expect(p.group).toBe(GROUP);
    expect(p.end, `partition ${p.partition}'s end`).toBe(topic.high);
    expect(p.lag, `partition ${p.partition}'s lag`).toBe(topic.high - (p.committed ?? topic.low));
  }
  const totalLag = groups.reduce((n, p) => n + p.lag, 0);
  expect(totalLag).toBe(before + ORDERS - FIRST_READ);
  expect(totalLag).toBeGreaterThan(0);

  await signIn(page, '/console/relay');
  const relay = new RelayPage(page);
  await relay.goto();
  await expect(relay.consumerLag).toBeVisible();
  await expect(relay.consumerLag.locator('tbody tr')).toHaveCount(3);
  for (const p of groups) {
    await expect(relay.lagRow(GROUP, TOPIC, p.partition).locator('td')).toHaveText([
      GROUP,
      TOPIC,
      String(p.partition),
      p.committed === null ? '–' : String(p.committed),
      String(p.end),
      String(p.lag),
    ]);
  }

  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 900 });
    await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow, `the relay page at ${width} px has no horizontal scroll`).toBeLessThanOrEqual(0);
    const file = info.outputPath(`relay-consumer-lag-${width}.png`);
    await page.screenshot({ path: file, fullPage: true });
    await info.attach(`relay page at ${width} px`, { path: file, contentType: 'image/png' });
  }
  await page.setViewportSize({ width: 1280, height: 900 });

  // The group reads the rest; the page, which asks the broker again every few seconds, shows
  // every partition caught up, without a reload.
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 11));
  expect(await consume()).toHaveLength(totalLag);
  for (const topic of ends) {
    await expect(relay.lagRow(GROUP, TOPIC, topic.partition).locator('td')).toHaveText(
      [GROUP, TOPIC, String(topic.partition), topic.high > topic.low ? String(topic.high) : /.*/, String(topic.high), '0'],
      { timeout: 15_000 },
    );
  }
  expect(await page.evaluate(() => (window as unknown as { marker: number }).marker)).toBe(11);
  await interactive(page);
  for (const p of await lag(request)) expect(p.lag).toBe(0);
});
