/**
 * Lets a pool tell what changed to parts built from the pool, after it: the pool emits into the relay from the start,
 * and the relay is connected once its receiver exists. Nothing is built to care about a change before that (those parts
 * read the pool as it is when they are built), so an event before connect() reaches nobody.
 */
export class Relay<Args extends unknown[]> {
  #receiver: (...args: Args) => void = () => {};

  readonly emit = (...args: Args): void => this.#receiver(...args);

  connect(receiver: (...args: Args) => void): void {
    this.#receiver = receiver;
  }
}
