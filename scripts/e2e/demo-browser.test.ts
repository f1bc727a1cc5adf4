// A person's path through the demo page, in Debian's Chromium driven by playwright-core: every
// state says in words what happened and what to do next. Not connected (booking is off and says
// why), refused (a bad token, a denied consent: words, once), connected (book, watch the meeting
// arrive, cancel it; also at a phone's 390-px width), a webhook that never comes, disconnected
// (old meetings offer no actions), and calsync down. Screenshots of each state land in test-results/.
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { bootSystem, rootDir, type RunningSystem } from './system-harness';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { copyDemoPage, writeDemoConfig } = require('../lib/demo.cjs') as typeof import('../lib/demo.cjs');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { chromiumPath } = require('../lib/prerequisites.cjs') as typeof import('../lib/prerequisites.cjs');
const screenshotDir = join(rootDir, 'test-results');

let system: RunningSystem;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  if (!existsSync(chromiumPath)) {
    throw new Error(`Chromium is not at ${chromiumPath}: apt-get install chromium (or set CHROMIUM_PATH)`);
  }
  const demoDir = mkdtempSync(join(tmpdir(), 'calsync-demo-'));
  copyDemoPage(rootDir, demoDir);
  system = await bootSystem({ label: 'e2e_browser', demoDir });
  await writeDemoConfig({
    demoDir,
    gatewayUrl: system.gateway,
    simulatorUrl: system.simulator,
    jwtSecret: system.jwtSecret,
  });
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = await browser.newPage();
}, 120_000);

afterEach(async () => {
  // Whatever happened, keep the page as it was last seen: the screenshot explains a failure.
  mkdirSync(screenshotDir, { recursive: true });
  await page?.screenshot({ path: join(screenshotDir, 'demo-last.png'), fullPage: true }).catch(() => undefined);
});

afterAll(async () => {
  await browser?.close();
  await system?.stop();
});

const notFound: string[] = [];

async function shoot(name: string) {
  mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: join(screenshotDir, name), fullPage: true });
}

async function expectStatusText(text: string) {
  await page.locator('#status', { hasText: text }).waitFor({ timeout: 15_000 });
}

async function statusText(): Promise<string> {
  return (await page.locator('#status').textContent()) ?? '';
}

/** The page fits a phone: nothing wider than the viewport, so nothing scrolls sideways. */
async function expectNoHorizontalOverflowAtPhoneWidth(name: string) {
  const desktop = page.viewportSize();
  await page.setViewportSize({ width: 390, height: 844 });
  const widths = await page.evaluate<{ scroll: number; client: number }>(
    '({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth })',
  );
  await shoot(name);
  expect(widths.scroll).toBeLessThanOrEqual(widths.client);
  if (desktop) await page.setViewportSize(desktop);
}

test('before connecting, booking is off and the page says why', async () => {
  page.on('response', (response) => {
    if (response.status() === 404) notFound.push(response.url());
  });
  await page.goto(`${system.gateway}/demo/`);
  await page.getByLabel('Demo user').selectOption('alice');
  await expectStatusText('Signed in as Alice Adviser.');
  await page.locator('#connection').getByText('no').waitFor();

  await expect(page.getByRole('button', { name: 'Book', exact: true }).isDisabled()).resolves.toBe(true);
  await expect(page.locator('#book-hint').textContent()).resolves.toContain('Connect Calendly first');
  await page.locator('#meetings', { hasText: 'connect Calendly (step 2), then book one' }).waitFor();
  await shoot('demo-not-connected.png');
  await expectNoHorizontalOverflowAtPhoneWidth('demo-not-connected-390.png');
}, 60_000);

test('a refused token and a denied consent are explained in words, and only once', async () => {
  await page.getByLabel('Personal access token').fill('not-a-calendly-token');
  await page.getByRole('button', { name: 'Connect with token' }).click();
  await expectStatusText('Calendly did not accept that token');
  expect(await statusText()).not.toContain('token_rejected');

  await page.getByRole('button', { name: 'Connect with Calendly (OAuth)' }).click();
  await page.getByRole('button', { name: 'Deny' }).waitFor();
  await shoot('consent.png');
  await page.getByRole('button', { name: 'Deny' }).click();
  await expectStatusText('You denied access');
  expect(await statusText()).not.toContain('access_denied');
  await shoot('demo-error.png');
  // The reason left the address bar with the message: a reload does not say it again.
  expect(new URL(page.url()).search).toBe('');
  await page.reload();
  await expectStatusText('Signed in as Alice Adviser.');
  expect(await statusText()).not.toContain('denied');
}, 60_000);

test('a person connects, books, watches the meeting arrive and cancels it', async () => {
  await page.getByRole('button', { name: 'Connect with Calendly (OAuth)' }).click();
  await page.getByRole('button', { name: 'Approve as Alice Adviser' }).click();
  await page.waitForURL(/\/demo\/$/);
  await expectStatusText('Calendly connected.');
  await page.locator('#connection').getByText('active').first().waitFor({ timeout: 15_000 });
  // The import on connect runs, then the connection is live on its webhook.
  await page.locator('#connection .pill.live', { hasText: 'live' }).waitFor({ timeout: 30_000 });
  await page.locator('#connection', { hasText: /done: \d+ meetings, \d+ invitees/ }).waitFor();
  expect(await page.locator('#connection dt:has-text("Changes arrive by") + dd').textContent()).toBe('webhook');
  // Connected: the token form has nothing to do until a disconnect.
  await expect(page.getByRole('button', { name: 'Connect with token' }).isDisabled()).resolves.toBe(true);
  await expect(page.getByLabel('Personal access token').isDisabled()).resolves.toBe(true);

  await page.getByLabel('Invitee name').fill('Ivy Investor');
  await page.getByLabel('Invitee email').fill('ivy@example.test');
  await page.getByRole('button', { name: 'Book', exact: true }).click();
  const row = page.locator('#meetings tr', { hasText: 'Ivy Investor' });
  await row.waitFor({ timeout: 15_000 });
  expect(await row.textContent()).toContain('active');
  await expectStatusText('Webhook received');
  await shoot('demo.png');
  await expectNoHorizontalOverflowAtPhoneWidth('demo-390.png');

  await row.getByRole('button', { name: 'Cancel Ivy Investor' }).click();
  await page.locator('#meetings tr.canceled', { hasText: 'Ivy Investor' }).waitFor({ timeout: 15_000 });

  const favicon = await fetch(`${system.gateway}/favicon.ico`);
  expect(favicon.status).toBe(200);
  expect(notFound).toEqual([]);
}, 120_000);

test('a webhook that does not come is reported after a while, not waited on for ever', async () => {
  const alicesCalendlyUri = await page.evaluate<string>('window.CALSYNC_DEMO.users[0].calendly.uri');
  const hooks = (await (await fetch(`${system.simulator}/_sim/webhook_subscriptions`)).json()) as {
    collection: { uuid: string; user: string | null; state: string }[];
  };
  const hook = hooks.collection.find(
    (candidate) => candidate.user === alicesCalendlyUri && candidate.state === 'active',
  );
  // Calendly loses the next delivery to Alice's webhook (its retry comes 30 s later).
  const fault = await fetch(`${system.simulator}/_sim/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ fail_deliveries: { subscription: hook!.uuid, count: 1, mode: 'skip' } }),
  });
  expect(fault.status).toBe(200);
  await page.getByLabel('Invitee name').fill('Lost Lou');
  await page.getByRole('button', { name: 'Book', exact: true }).click();
  await expectStatusText('waiting for the webhook');
  await page.locator('#status', { hasText: 'but no webhook has come in' }).waitFor({ timeout: 30_000 });
  expect(await statusText()).toContain(`${system.simulator}/_sim/deliveries`);
  await shoot('demo-no-webhook.png');
  await page.getByLabel('Invitee name').fill('Ivy Investor');
}, 60_000);

test('another user connecting with an account already in use is told what to do, not a code', async () => {
  const alicesToken = await page.evaluate<string>('window.CALSYNC_DEMO.users[0].calendly.personal_access_token');
  await page.getByLabel('Demo user').selectOption('bob');
  await expectStatusText('Signed in as Bob Broker.');
  await page.getByLabel('Personal access token').fill(alicesToken);
  await page.getByRole('button', { name: 'Connect with token' }).click();
  await expectStatusText('already connected to another demo user');
  expect(await statusText()).not.toContain('account_in_use');
  await page.getByLabel('Demo user').selectOption('alice');
  await page.locator('#connection').getByText('active').first().waitFor({ timeout: 15_000 });
}, 60_000);

test('after a disconnect, old meetings stay visible but offer no actions', async () => {
  await page.getByRole('button', { name: 'Book', exact: true }).click();
  await page.locator('#meetings').getByRole('button', { name: 'Cancel Ivy Investor' }).waitFor({ timeout: 15_000 });

  await page.getByRole('button', { name: 'Disconnect' }).click();
  await page.locator('#connection').getByText('no').waitFor({ timeout: 15_000 });
  await expectStatusText('Disconnected');
  await page.locator('#meetings-hint').waitFor({ state: 'visible' });
  await expect(page.locator('#meetings tr', { hasText: 'Ivy Investor' }).count()).resolves.toBeGreaterThan(0);
  await expect(page.locator('#meetings button').count()).resolves.toBe(0);
  await expect(page.getByRole('button', { name: 'Book', exact: true }).isDisabled()).resolves.toBe(true);
  await shoot('demo-after.png');
}, 60_000);

test('says in words that calsync cannot be reached when it is down', async () => {
  await system.stopService('gateway');
  await expectStatusText(`Cannot reach calsync at ${system.gateway}`);
  expect(await statusText()).not.toContain('Failed to fetch');
  await page.locator('#connection', { hasText: 'calsync cannot be reached' }).waitFor();
  await expect(page.getByRole('button', { name: 'Connect with Calendly (OAuth)' }).isDisabled()).resolves.toBe(true);
  await shoot('demo-down.png');
}, 60_000);
