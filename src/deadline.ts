/** Waiting for something to finish, but not forever: shutdowns and drains give up after their deadline. */

/** Resolves to true when `work` settles within `ms`, to false when the time runs out first. */
export function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: Timer | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(resolve, ms, false)));
  const done = work.then(
    () => true as const,
    () => true as const,
  );
  return Promise.race([done, late]).finally(() => clearTimeout(timer));
}
