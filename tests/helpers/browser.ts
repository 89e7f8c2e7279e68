/**
 * Test helper: a real headless Chromium (Debian's `/usr/bin/chromium`) driven by
 * playwright-core, with a fresh profile directory removed on dispose.
 *
 * @module
 */
import { type BrowserContext, chromium, type Page } from "playwright-core";

/** Where Debian installs Chromium (`scripts/ensure-tools` installs it). */
export const CHROMIUM = Deno.env.get("MR_CHROMIUM") ?? "/usr/bin/chromium";

/** The flags Chromium needs in a container without a GPU, network or sandbox. */
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** A browser context with one page. */
export interface TestBrowser extends AsyncDisposable {
  context: BrowserContext;
  page: Page;
}

/** Launches Chromium with a fresh `--user-data-dir`. */
export async function launchBrowser(
  o: { width?: number; height?: number } = {},
): Promise<TestBrowser> {
  const profile = await Deno.makeTempDir({ prefix: "mr-chromium-" });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: o.width ?? 1280, height: o.height ?? 860 },
  });
  const page = context.pages()[0] ?? await context.newPage();
  return {
    context,
    page,
    async [Symbol.asyncDispose]() {
      await context.close().catch(() => {});
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}
