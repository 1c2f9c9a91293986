import { expect, type Locator, type Page } from '@playwright/test';

/** The admin token the test server runs with (playwright.config.ts sets it). */
export const ADMIN_TOKEN = 'e2e-admin-token-0123456789';

/** Waits until the browser bundle has taken over the server-rendered page. */
export async function interactive(page: Page) {
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}

/** `/console/sign-in`. */
export class SignInPage {
  readonly token: Locator;
  readonly submit: Locator;
  readonly error: Locator;

  constructor(private readonly page: Page) {
    this.token = page.getByLabel('Admin token');
    this.submit = page.getByRole('button', { name: 'Sign in' });
    this.error = page.getByRole('alert');
  }

  async goto() {
    await this.page.goto('/console/sign-in');
  }

  async signIn(token: string) {
    await this.token.fill(token);
    await this.submit.click();
  }
}

/** The console's navigation, on every console page. */
class ConsolePage {
  readonly signOutButton: Locator;
  readonly notice: Locator;
  readonly breaker: Locator;

  constructor(protected readonly page: Page) {
    this.signOutButton = page.getByRole('button', { name: 'Sign out' });
    this.notice = page.getByTestId('notice');
    this.breaker = page.getByTestId('breaker');
  }

  async signOut() {
    await this.signOutButton.click();
  }
}

/** `/console`: the live dashboard. */
export class DashboardPage extends ConsolePage {
  readonly feed: Locator;
  readonly mode: Locator;
  readonly processed: Locator;
  readonly throughput: Locator;
  readonly pending: Locator;
  readonly faultBanner: Locator;
  readonly dlqPending: Locator;

  constructor(page: Page) {
    super(page);
    this.feed = page.getByTestId('feed');
    this.mode = page.getByTestId('mode');
    this.processed = page.getByTestId('processed');
    this.throughput = page.getByTestId('throughput');
    this.pending = page.getByTestId('pending');
    this.faultBanner = page.getByTestId('fault-banner');
    this.dlqPending = page.getByTestId('dlq-pending');
  }

  async goto() {
    await this.page.goto('/console');
    await interactive(this.page);
    await expect(this.feed).toHaveText('Live');
  }

  /** A numeric figure of the dashboard. */
  static async number(figure: Locator): Promise<number> {
    return Number.parseFloat((await figure.innerText()).replace(/[^0-9.]/g, ''));
  }
}

/** `/console/relay`: mode, suspension, faults and topics. */
export class RelayPage extends ConsolePage {
  readonly mode: Locator;
  readonly pending: Locator;
  /** With a Kafka sink: the consumer groups' committed offset, end offset and lag per partition. */
  readonly consumerLag: Locator;

  constructor(page: Page) {
    super(page);
    this.mode = page.getByTestId('relay-mode');
    this.pending = page.getByTestId('relay-pending');
    this.consumerLag = page.getByTestId('consumer-lag');
  }

  /** The consumer lag table's row of `group` on `topic`'s `partition`. */
  lagRow(group: string, topic: string, partition: number): Locator {
    return this.consumerLag
      .locator('tbody tr')
      .filter({ has: this.page.locator('td:nth-child(1)', { hasText: new RegExp(`^${group}$`) }) })
      .filter({ has: this.page.locator('td:nth-child(2)', { hasText: new RegExp(`^${topic.replace(/\./g, '\\.')}$`) }) })
      .filter({ has: this.page.locator('td:nth-child(3)', { hasText: new RegExp(`^${partition}$`) }) });
  }

  async goto() {
    await this.page.goto('/console/relay');
    await interactive(this.page);
    await expect(this.mode).not.toHaveText('–');
  }

  async switchMode(mode: 'polling' | 'streaming') {
    await this.page.getByLabel('Relay mode').selectOption(mode);
    await this.page.getByRole('button', { name: 'Switch mode' }).click();
    await expect(this.notice).toContainText(`switched to ${mode}`);
  }

  /** Suspends the relay, then resumes it: two audited actions, each confirmed by its notice. */
  async suspendAndResume() {
    await this.page.getByRole('button', { name: 'Suspend relay' }).click();
    await expect(this.notice).toContainText('Relay suspended.');
    await this.page.getByRole('button', { name: 'Resume relay' }).click();
    await expect(this.notice).toContainText('Relay resumed.');
  }

  async setFault(fault: 'none' | 'down' | 'slow' | 'poison', options: { eventType?: string } = {}) {
    await this.page.getByLabel('Simulated fault').selectOption(fault);
    if (options.eventType) {
      await this.page.getByLabel('Event type (for poison)').selectOption(options.eventType);
    }
    await this.page.getByRole('button', { name: 'Apply fault' }).click();
    await expect(this.notice).toContainText(`Fault set to ${fault}`);
  }
}

/** `/console/dlq`: the dead letter queue. */
export class DlqPage extends ConsolePage {
  readonly record: Locator;

  constructor(page: Page) {
    super(page);
    this.record = page.getByTestId('dlq-record');
  }

  async goto(query = '') {
    await this.page.goto(`/console/dlq${query}`);
    await interactive(this.page);
  }

  rowFor(eventType: string, orderId: string): Locator {
    return this.page
      .locator('tr[data-dlq-id]')
      .filter({ hasText: eventType })
      .filter({ has: this.page.locator(`a[href="/orders/${orderId}"]`) });
  }
}
