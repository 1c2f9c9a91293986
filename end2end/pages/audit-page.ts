import { expect, type Locator, type Page } from '@playwright/test';
import { interactive } from './console';

/** `/console/audit`: the audit log of operator actions, newest first. */
export class AuditPage {
  readonly rows: Locator;
  readonly filter: Locator;
  readonly older: Locator;

  constructor(private readonly page: Page) {
    this.rows = page.locator('tr[data-audit-id]');
    this.filter = page.getByLabel('Action or prefix');
    this.older = page.getByRole('link', { name: 'Older →' });
  }

  async goto(query = '') {
    await this.page.goto(`/console/audit${query}`);
    await interactive(this.page);
    await expect(this.page.getByText('Loading…')).toHaveCount(0);
  }

  /** Shows only the entries whose action is `action` or starts with it (ending in `.`). */
  async filterBy(action: string) {
    await this.filter.fill(action);
    await this.page.getByRole('button', { name: 'Filter' }).click();
    await interactive(this.page);
    await expect(this.page.getByText('Loading…')).toHaveCount(0);
  }

  /** The text of one column (`When`, `Action`, `Target`, `Outcome`, `Session`, `Address`) of `row`. */
  cell(row: Locator, column: string): Locator {
    return row.locator(`td[data-label="${column}"]`);
  }
}
