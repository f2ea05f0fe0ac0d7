/**
 * Retrying an operation that failed because a service was unavailable.
 *
 * Only UNAVAILABLE is retried (docs/artifact-protocol.md): it means the request did not reach a
 * server that acted on it (connection refused or reset, a service draining on SIGTERM), and
 * every create carries a request id that makes a repeat return the first result. Any other
 * status is an answer; repeating the call would get the same answer.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { Unavailable } from "./errors.js";

/** Exponential backoff with full jitter; the Python SDK's defaults. */
export interface RetryPolicy {
  attempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  multiplier: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 6,
  initialBackoffMs: 200,
  maxBackoffMs: 5000,
  multiplier: 2,
};

/** The longest sleep before retry number `attempt` (1-based); jitter picks below it. */
export function backoffMs(policy: RetryPolicy, attempt: number): number {
  return Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** (attempt - 1));
}

/**
 * Run `operation` until it succeeds, fails with anything but `Unavailable`, or
 * `policy.attempts` are spent. Full jitter keeps clients restarting after an outage from
 * arriving in lockstep.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  operation: (attempt: number) => Promise<T>,
  onRetry?: (error: Unavailable, delayMs: number) => void,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (!(error instanceof Unavailable) || attempt >= policy.attempts) throw error;
      const delay = Math.random() * backoffMs(policy, attempt);
      onRetry?.(error, delay);
      await sleep(delay);
    }
  }
}
