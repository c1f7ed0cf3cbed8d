/** This process's file descriptors, from /proc: how many are open, and how many it may open. */
import { readFileSync, readdirSync } from "node:fs";

export function openDescriptors(): number {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return 0;
  }
}

/** The soft limit on open files (Bun raises it to the hard limit at startup); null where it cannot be read. */
export function descriptorLimit(): number | null {
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return line ? Number(line[1]) : null;
  } catch {
    return null;
  }
}
