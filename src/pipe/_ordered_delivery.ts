// In-order delivery of what a pipe's peer sends.
//
// Two readers take turns on a pipe's socket (one at a time, decided by the
// lock word in _receiver_shared.ts): the receiver Worker, which posts what
// it reads to the owning thread's event loop, and the owning thread itself
// while it blocks in sendSync() (_sync_reader.ts), which keeps what is not
// its reply. The two streams reach the owner by different paths and can
// overtake each other: a post made before a sendSync() may still be queued
// when that sendSync() has read and kept later messages.
//
// The protocol that keeps arrival order:
// 1. Whoever reads a record takes the pipe's next sequence number, an
//    atomic counter in the shared table (E_SEQ), while it holds the lock;
//    so numbers follow the order in which records left the socket.
// 2. Both readers hand every item, numbered, to this table; sendSync()
//    hands in its own reply as a gap (null) after returning it.
// 3. The table delivers items strictly by number, from the event loop
//    only (never inside sendSync(): the pipe flushes from a timer after a
//    sync call), stopping at the first number not yet handed in.
// So events keep arrival order whichever thread read them, and no handler
// runs while a sync call waits.

/** Delivers items numbered 0, 1, 2, ... in that order, whatever the order they come in. */
export class OrderedDelivery<T> {
  readonly #deliver: (item: T) => void;
  // Items by sequence number; null for a number with nothing to deliver.
  readonly #held = new Map<number, T | null>();
  #next = 0;
  #flushing = false;

  /** @param deliver Called for each item, in sequence order. */
  constructor(deliver: (item: T) => void) {
    this.#deliver = deliver;
  }

  /** Hands in item `seq` (null: a gap, e.g. a reply already returned). */
  hold(seq: number, item: T | null): void {
    this.#held.set(seq, item);
  }

  /**
   * Hands in gap `seq` (a reply a sync call returned). When it is next in
   * order nothing is stored, so a sync call that read only its reply
   * leaves nothing to flush (no timer after each call).
   */
  gap(seq: number): void {
    if (seq === this.#next) this.#next++;
    else this.#held.set(seq, null);
  }

  /** Whether the next item in order is held (a flush would deliver it). */
  get ready(): boolean {
    return this.#held.has(this.#next);
  }

  /** Items held, gaps included. */
  get size(): number {
    return this.#held.size;
  }

  /**
   * Delivers the held items that are next in order. A flush started from
   * inside a delivery returns at once (the running one continues).
   */
  flush(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#held.has(this.#next)) {
        const item = this.#held.get(this.#next)!;
        this.#held.delete(this.#next);
        this.#next++;
        if (item !== null) this.#deliver(item);
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** Drops every held item, each passed to `drop` (to close its fds). */
  clear(drop: (item: T) => void): void {
    for (const item of this.#held.values()) if (item !== null) drop(item);
    this.#held.clear();
  }
}
