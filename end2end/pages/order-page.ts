import { type Locator, type Page } from '@playwright/test';

/** `/orders/:id`: one order and its event timeline. */
export class OrderPage {
  readonly heading: Locator;
  readonly summary: Locator;
  readonly events: Locator;

  constructor(private readonly page: Page) {
    this.heading = page.getByRole('heading', { level: 1 });
    this.summary = page.getByRole('region', { name: 'Summary' });
    this.events = page.getByRole('list', { name: 'Events' });
  }

  /** The order id from the current URL. */
  orderId(): string {
    return new URL(this.page.url()).pathname.split('/').pop() ?? '';
  }

  event(type: string): Locator {
    return this.events.locator(`li[data-event-type="${type}"]`);
  }
}
