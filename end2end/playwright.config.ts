import { defineConfig } from '@playwright/test';
import { mkdtempSync, readFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

// One server per run, on its own empty data directory. Workers re-read this file, so the
// directory is chosen once and passed down through the environment.
const port = Number(process.env.E2E_PORT ?? 3100);
process.env.E2E_DATA_DIR ??= mkdtempSync(join(tmpdir(), 'outbox-e2e-'));
const baseURL = `http://127.0.0.1:${port}`;
const ADMIN_TOKEN = 'e2e-admin-token-0123456789';

// A second server with a Kafka sink, on a tansu broker of its own (SQLite storage in a temp
// dir), for the consumer lag test (tests/consumer_lag.spec.ts). The spec reads its address and
// the consumer group from the environment set here.
const tansuPort = Number(process.env.E2E_TANSU_PORT ?? 19192);
const kafkaPort = Number(process.env.E2E_KAFKA_PORT ?? 3101);
process.env.E2E_TANSU_DIR ??= mkdtempSync(join(tmpdir(), 'outbox-e2e-tansu-'));
process.env.E2E_KAFKA_DATA_DIR ??= mkdtempSync(join(tmpdir(), 'outbox-e2e-kafka-'));
process.env.E2E_KAFKA_BROKERS = `127.0.0.1:${tansuPort}`;
process.env.E2E_KAFKA_BASE_URL = `http://127.0.0.1:${kafkaPort}`;
process.env.E2E_LAG_GROUP ??= 'e2e-console-lag';
const tansuListener = `tcp://127.0.0.1:${tansuPort}`;

/** `make` exports TANSU; run by hand, the path is built from the Makefile's version, as
 * scripts/setup.sh installs it. */
function tansuPath(): string {
  if (process.env.TANSU) return process.env.TANSU;
  const makefile = readFileSync(join(__dirname, '..', 'Makefile'), 'utf8');
  const version = /^TANSU_VERSION := (\S+)$/m.exec(makefile)?.[1];
  return join(homedir(), '.cache', 'outbox-tools', `tansu-${version}-sqlite`, 'bin', 'tansu');
}

export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list'], ['html', { open: 'never' }]],
  use: {
    baseURL,
    browserName: 'chromium',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      // No sandbox as root; no background traffic on a machine without a network.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
    },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
  webServer: [
    {
      command: '../target/debug/outbox',
      url: `${baseURL}/readyz`,
      env: {
        LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
        LEPTOS_SITE_ROOT: '../target/site',
        DATA_DIR: process.env.E2E_DATA_DIR,
        RUST_LOG: 'warn',
        // The console tests sign in with this token and watch the breaker open and close.
        ADMIN_TOKEN,
        BREAKER_OPEN_TIMEOUT: '1s',
        RETRY_INITIAL_DELAY: '20ms',
        RETRY_MAX_DELAY: '100ms',
      },
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: 'ignore',
      stderr: 'pipe',
    },
    {
      // Not HTTP: Playwright waits until the port accepts connections.
      command: `"${tansuPath()}" broker --storage-engine sqlite://tansu.db --listener-url ${tansuListener} --advertised-listener-url ${tansuListener}`,
      cwd: process.env.E2E_TANSU_DIR,
      port: tansuPort,
      reuseExistingServer: false,
      timeout: 30_000,
      stdout: 'ignore',
      stderr: 'pipe',
    },
    {
      command: '../target/debug/outbox',
      url: `${process.env.E2E_KAFKA_BASE_URL}/readyz`,
      env: {
        LEPTOS_SITE_ADDR: `127.0.0.1:${kafkaPort}`,
        LEPTOS_SITE_ROOT: '../target/site',
        DATA_DIR: process.env.E2E_KAFKA_DATA_DIR,
        RUST_LOG: 'warn',
        ADMIN_TOKEN,
        KAFKA_BROKERS: process.env.E2E_KAFKA_BROKERS,
        KAFKA_PARTITIONS: '3',
        // tansu refuses ListGroups: the group is found because it is named here.
        KAFKA_LAG_GROUPS: process.env.E2E_LAG_GROUP,
      },
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: 'ignore',
      stderr: 'pipe',
    },
  ],
});
