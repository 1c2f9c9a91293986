import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import { ADMIN_TOKEN, SignInPage } from './console';

/** What the console specs share: the admin's API headers, signing in through the sign-in page,
 * and failing a test on any error in the browser console. */

/** Headers of admin API requests (the token playwright.config.ts gives the servers). */
export const admin = { Authorization: `Bearer ${ADMIN_TOKEN}` };

/** Signs in with the admin token through `/console/sign-in?next=…` and waits to land on `next`. */
export async function signIn(page: Page, next = '/console') {
  await page.goto(`/console/sign-in?next=${next}`);
  await new SignInPage(page).signIn(ADMIN_TOKEN);
  await expect(page).toHaveURL(next);
}

/** The browser console errors and page errors of the current test. */
export class BrowserErrors {
  list: string[] = [];

  /** Drops the errors a test expects (each test ends by asserting there are no others). */
  ignore(expected: (error: string) => boolean) {
    this.list = this.list.filter((e) => !expected(e));
  }
}

/** For every test of the calling spec file: collects the browser console errors and page
 * errors, and after the test runs `cleanUp` (if any), then asserts there were none. */
export function failOnBrowserErrors(cleanUp?: (request: APIRequestContext) => Promise<void>): BrowserErrors {
  const errors = new BrowserErrors();

  test.beforeEach(async ({ page }) => {
    errors.list = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.list.push(m.text());
    });
    page.on('pageerror', (e) => errors.list.push(e.message));
  });

  test.afterEach(async ({ request }) => {
    if (cleanUp) await cleanUp(request);
    expect(errors.list, 'no errors in the browser console').toEqual([]);
  });

  return errors;
}

/** Clears the simulated fault (tests that poison events leave the sink healthy). */
export async function clearFault(request: APIRequestContext) {
  await request.post('/api/admin/faults', { headers: admin, data: { mode: 'none' } });
}
