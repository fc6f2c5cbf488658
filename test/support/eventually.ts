/**
 * Whether `condition` holds within `timeoutMs`, polled every 20 ms (a deadline, not a measure):
 * for `expect(await eventually(…), 'what').toBe(true)`.
 */
export async function eventually(condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
