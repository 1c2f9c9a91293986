import { type Locator, type Page } from '@playwright/test';

/** `/orders/:id`: one order and its event timeline. */
export class OrderPage {
  readonly heading: Locator;
  readonly summary: Locator;
  readonly events: Locator;
  /** Links between pages of the timeline. */
  readonly olderEvents: Locator;
  readonly newestEvents: Locator;

  constructor(private readonly page: Page) {
    this.heading = page.getByRole('heading', { level: 1 });
    this.summary = page.getByRole('region', { name: 'Summary' });
    this.events = page.getByRole('list', { name: 'Events' });
    const pager = page.getByRole('navigation', { name: 'Event pages' });
    this.olderEvents = pager.getByRole('link', { name: 'Older events' });
    this.newestEvents = pager.getByRole('link', { name: 'Newest events' });
  }

  /** The order id from the current URL. */
  orderId(): string {
    return new URL(this.page.url()).pathname.split('/').pop() ?? '';
  }

  /** The timeline's entries, in the order shown. */
  entries(): Locator {
    return this.events.locator('li.timeline-item');
  }

  event(type: string): Locator {
    return this.events.locator(`li[data-event-type="${type}"]`);
  }
}
