import { expect, test } from '@playwright/test';
import { RelayPage, interactive } from '../pages/console';
import { AuditPage } from '../pages/audit-page';
import { failOnBrowserErrors, signIn } from '../pages/session';

// Each test ends by asserting the browser console reported no errors.
failOnBrowserErrors();

test.beforeEach(async ({ page }) => {
  await signIn(page, '/console/relay');
});

test('suspending and resuming the relay from the console shows in the audit log', async ({ page }) => {
  const relay = new RelayPage(page);
  await relay.goto();
  await relay.suspendAndResume();

  await page.getByRole('link', { name: 'Audit log' }).click();
  await expect(page).toHaveURL('/console/audit');
  const audit = new AuditPage(page);
  await expect(page.getByRole('link', { name: 'Audit log' })).toHaveAttribute('aria-current', 'page');
  const [resumed, suspended] = [audit.rows.nth(0), audit.rows.nth(1)];
  await expect(audit.cell(resumed, 'Action')).toHaveText('relay.resume');
  await expect(audit.cell(suspended, 'Action')).toHaveText('relay.suspend');
  for (const row of [resumed, suspended]) {
    await expect(audit.cell(row, 'Outcome')).toContainText('ok');
    await expect(audit.cell(row, 'Outcome')).toContainText('200');
    await expect(audit.cell(row, 'Address')).toHaveText('127.0.0.1');
  }
  // Both were done in the session this test signed in with: its sign-in carries the same marker.
  const marker = await audit.cell(resumed, 'Session').innerText();
  expect(marker).toMatch(/^[0-9a-f]{12}$/);
  const signIn = audit.rows.filter({ has: page.locator('td[data-label="Action"]', { hasText: 'session.sign_in' }) }).first();
  await expect(audit.cell(signIn, 'Session')).toHaveText(marker);
  await expect(audit.cell(suspended, 'Session')).toHaveText(marker);

  await audit.filterBy('session.');
  await expect(page).toHaveURL('/console/audit?action=session.');
  await expect(audit.rows.first()).toBeVisible();
  for (const action of await audit.rows.locator('td[data-label="Action"]').allInnerTexts()) {
    expect(action).toMatch(/^session\./);
  }
  await expect(audit.filter).toHaveValue('session.');
});

test('the audit page fits 1280 and 390 px wide; screenshots are kept', async ({ page }, testInfo) => {
  const relay = new RelayPage(page);
  await relay.goto();
  await relay.suspendAndResume();
  const audit = new AuditPage(page);
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 900 });
    await audit.goto();
    await expect(audit.rows.first()).toBeVisible();
    await interactive(page);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow, `the audit page at ${width} px has no horizontal scroll`).toBeLessThanOrEqual(0);
    const file = testInfo.outputPath(`console-audit-${width}.png`);
    await page.screenshot({ path: file, fullPage: true });
    await testInfo.attach(`audit at ${width} px`, { path: file, contentType: 'image/png' });
  }
});
