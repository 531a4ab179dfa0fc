/**
 * V8 flags under which only the hottest functions are optimized, in smaller pieces: a fifth of
 * V8's default budget for inlining (920 bytes of bytecode per function) and four times its
 * interrupt budget (67,584). A process that starts fresh and at once runs a large piece of work
 * (the language server's first analysis of a large spec, the daemon's first burst of jobs)
 * otherwise compiles its hot code on the same processors while that work runs. Set with
 * `setFlagsFromString` once the process's code has loaded: a flag set earlier makes V8 compile
 * Node's own modules again.
 */
export const LEAN_OPTIMIZING_FLAGS = '--max-inlined-bytecode-size-cumulative=200 --interrupt-budget=270000';
