/**
 * {@linkcode TypedEventTarget}: an `EventTarget` whose `addEventListener`
 * knows the event types of the class, so listeners get the right event
 * class without casts.
 *
 * @module
 */

/**
 * An `EventTarget` typed by an event map `M` (event type → event class).
 * Subclasses may override {@linkcode TypedEventTarget.onListen} to act on
 * the first listener of a type (start watching a descriptor, say).
 *
 * @example
 * ```ts
 * import { TypedEventTarget } from "@isola/isola";
 *
 * interface TickMap {
 *   tick: Event;
 * }
 * const t = new TypedEventTarget<TickMap>();
 * t.addEventListener("tick", (e) => console.log(e.type)); // "tick"
 * t.dispatchEvent(new Event("tick"));
 * ```
 */
export class TypedEventTarget<M extends { [K in keyof M]: Event }>
  extends EventTarget {
  /**
   * Listens for an event of the map, with a listener typed for it.
   *
   * @param type The event type.
   * @param listener The handler.
   * @param options Standard listener options.
   */
  override addEventListener<K extends keyof M & string>(
    type: K,
    listener: (ev: M[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /**
   * Listens for any event type, with a generic listener.
   *
   * @param type The event type.
   * @param listener The handler.
   * @param options Standard listener options.
   */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Listens for events (implementation of the overloads above). */
  override addEventListener(
    type: string,
    // deno-lint-ignore no-explicit-any
    listener: any,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener, options);
    this.onListen(type);
  }

  /**
   * Called after each `addEventListener`; does nothing here.
   *
   * @param _type The event type listened for.
   */
  protected onListen(_type: string): void {}
}
