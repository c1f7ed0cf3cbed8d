/**
 * A text answer of a given size for the compression benchmarks: JSON records such as an API returns, cut to `size`
 * bytes (the same bytes every time, so every run and every proxy compresses the same thing).
 */
export function jsonText(size: number): Uint8Array {
  const records: string[] = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const record = JSON.stringify({
      id: i,
      name: `user-${i}`,
      email: `user${i}@example.com`,
      active: i % 3 === 0,
      score: ((i * 7919) % 10_000) / 100,
      tags: ["alpha", "beta", `group-${i % 7}`],
      created: new Date(Date.UTC(2026, 0, 1) + i * 3_600_000).toISOString(),
    });
    records.push(record);
    length += record.length + 1;
  }
  return new TextEncoder().encode(`[${records.join(",")}]`).subarray(0, size);
}
