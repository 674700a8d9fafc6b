/**
 * Project actions take from seconds (start) to minutes (a big snapshot). A form post waits
 * a little for the action; past that it redirects to the project page, which follows the
 * status live, and the action finishes in the background. A late failure is reported by
 * `onLateFailure` (the project itself records it: it goes to `error` with the reason).
 */
export type Settled<T> = { done: true; value: T } | { done: false };

export async function settleWithin<T>(
  work: Promise<T>,
  ms: number,
  onLateFailure: (err: unknown) => void,
): Promise<Settled<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const finished = work.then((value): Settled<T> => ({ done: true, value }));
  const waited = new Promise<Settled<T>>((resolve) => {
    timer = setTimeout(() => resolve({ done: false }), ms);
  });
  try {
    const outcome = await Promise.race([finished, waited]);
    if (!outcome.done) {
      finished.catch(onLateFailure);
    }
    return outcome;
  } finally {
    clearTimeout(timer);
  }
}
