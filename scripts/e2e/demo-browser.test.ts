// A person's path through the demo page, in Debian's Chromium driven by playwright-core:
// sign in as a demo user, connect Calendly through the simulator's consent page, book a meeting
// as an invitee, watch it arrive without reloading, cancel it, and disconnect.
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

test('a person connects, books, watches the meeting arrive, cancels it and disconnects', async () => {
  await page.goto(`${system.gateway}/demo/`);
  await page.getByLabel('Demo user').selectOption('alice');
  await expectStatusText(page, 'Signed in as Alice Adviser.');

  await page.getByRole('button', { name: 'Connect with Calendly (OAuth)' }).click();
  await page.getByRole('button', { name: 'Approve as Alice Adviser' }).click();
  await page.waitForURL(/\/demo\/\?calendly=connected/);
  await expectStatusText(page, 'Calendly connected.');
  await page.locator('#connection').getByText('active').first().waitFor({ timeout: 15_000 });

  await page.getByLabel('Invitee name').fill('Ivy Investor');
  await page.getByLabel('Invitee email').fill('ivy@example.test');
  await page.getByRole('button', { name: 'Book', exact: true }).click();
  const row = page.locator('#meetings tr', { hasText: 'Ivy Investor' });
  await row.waitFor({ timeout: 15_000 });
  expect(await row.textContent()).toContain('active');

  mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: join(screenshotDir, 'demo.png'), fullPage: true });

  await row.getByRole('button', { name: 'Cancel Ivy Investor' }).click();
  await page.locator('#meetings tr.canceled', { hasText: 'Ivy Investor' }).waitFor({ timeout: 15_000 });

  await page.getByRole('button', { name: 'Disconnect' }).click();
  await page.locator('#connection').getByText('no').waitFor({ timeout: 15_000 });
  await page.screenshot({ path: join(screenshotDir, 'demo-after.png'), fullPage: true });
}, 120_000);

async function expectStatusText(target: Page, text: string) {
  await target.locator('#status', { hasText: text }).waitFor({ timeout: 10_000 });
}
