import { expect, type Locator, type Page } from '@playwright/test';

/** One item row of the create form. */
export interface ItemValues {
  sku: string;
  quantity: string;
  unitPrice: string;
}

/** `/orders`: the create-order form and the list of recent orders. */
export class OrdersPage {
  readonly form: Locator;
  readonly list: Locator;

  constructor(private readonly page: Page) {
    this.form = page.locator('form.order-form');
    this.list = page.getByRole('region', { name: 'Recent orders' });
  }

  async goto() {
    await this.page.goto('/orders');
  }

  /** Waits until the browser bundle has taken over the server-rendered page. */
  async waitUntilInteractive() {
    await expect(this.page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  }

  item(n: number): Locator {
    return this.form.getByRole('group', { name: `Item ${n}`, exact: true });
  }

  async fillItem(n: number, values: ItemValues) {
    const row = this.item(n);
    await row.getByLabel('SKU').fill(values.sku);
    await row.getByLabel('Quantity').fill(values.quantity);
    await row.getByLabel('Unit price').fill(values.unitPrice);
  }

  async addItem() {
    await this.form.getByRole('button', { name: 'Add item' }).click();
  }

  async submit() {
    await this.form.getByRole('button', { name: 'Create order' }).click();
  }

  /** The error message shown next to `field` (linked to it by aria-describedby, which may
   * also name a hint). */
  async errorNextTo(field: Locator): Promise<Locator> {
    const ids = (await field.getAttribute('aria-describedby')) ?? '';
    const id = ids.split(' ').find((i) => i.endsWith('-error'));
    expect(id, 'field has an error slot').toBeTruthy();
    return this.page.locator(`[id="${id}"]`);
  }

  orderRow(orderId: string): Locator {
    return this.list.locator(`tr[data-order-id="${orderId}"]`);
  }
}
